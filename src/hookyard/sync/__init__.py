"""Talking to the providers: API clients, reconcilers that poll for what webhooks missed,
outbound sync of our own changes, and the scheduler that runs them."""
