"""Notifications: what a state change tells people, recorded in the handler's transaction and
sent from an outbox after commit (docs/notifications.md).

- `record.py`: called by the domain handlers inside the event's transaction; one row per
  change, whatever the number of deliveries, replays or reporters (webhook and polling).
- `recipients.py`, `preferences.py`: who is told, and how (immediate or daily digest).
- `render.py` (Jinja2 templates, HTML and text), `smtp.py` (aiosmtplib), `job.py`: the
  worker's background job that fans out, sends, retries and digests.
"""
