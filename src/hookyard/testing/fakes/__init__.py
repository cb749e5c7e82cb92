"""Fake provider platforms: small ASGI apps that speak each provider's API and send its
webhooks, signed exactly as the provider signs them. Used by the tests, the simulator and the
demo; hookyard's provider clients reach them by base URL like the real platforms."""
