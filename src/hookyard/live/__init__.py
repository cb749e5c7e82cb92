"""Live updates: state changes published in the transaction that makes them, fanned out
after commit to the WebSocket clients of every API process (`/api/v1/live`, docs/live.md).

- `change.py`: the one format of a change (kind, id, tenant, status, data, time).
- `publish.py`: `publish(tx, change)` inside a transaction; PostgreSQL's NOTIFY, or (SQLite)
  collected on the connection and handed over after its commit.
- `hub.py`: the per-process fan-out to connected sockets, each with a bounded queue.
- `feed.py`: what feeds the hub: a LISTEN thread on PostgreSQL, commit hooks on SQLite.
"""
