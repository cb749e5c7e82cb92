"""Contact2Sale (C2S) leads: validated contact data, lead status, closures to notify and the
enrichment state."""
