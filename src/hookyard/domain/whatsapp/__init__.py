"""WhatsApp business accounts, message templates (status, quality, history), the campaigns
that use them, and alerts."""
