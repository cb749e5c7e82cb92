"""Alerts: rules evaluated on a schedule (`rules.py`), the alerts they open, update and
resolve (`evaluate.py`), what people read and acknowledge (`queries.py`), and the values the
rules measured, which `/metrics` shows (docs/alerts.md)."""
