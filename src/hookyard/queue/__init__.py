"""Leased work: one queue mechanism for events, enrichment, e-mail, the outbox and the scheduler."""
