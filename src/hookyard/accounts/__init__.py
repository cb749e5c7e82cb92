"""Accounts: tenants, the people who use hookyard, their API keys and sessions.

- `tables.py`: `tenants`, `users`, `api_keys`.
- `identity.py`: who is calling (roles, principals), argon2id passwords, API-key lookup,
  session tokens, and every query on those tables.

No HTTP here: the management API (`api/auth.py`, `api/accounts.py`), the dashboard, the
e-mail notifier and the CLI all use it.
"""
