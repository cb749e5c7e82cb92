"""The scheduler's jobs (migration 0009 creates the table; `tests/test_migrations.py` compares
it)."""

from __future__ import annotations

from sqlalchemy import Column, String, Table, Text

from hookyard.db.schema import UTCDateTime, metadata

# One row per scheduled job. A process runs a job only after moving its lease forward in one
# conditional UPDATE, so each run happens in one process, whichever of many asks first.
schedule_jobs = Table(
    "schedule_jobs",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("next_run_at", UTCDateTime(), nullable=False),
    Column("lease_owner", String(200), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("last_started_at", UTCDateTime(), nullable=True),
    Column("last_finished_at", UTCDateTime(), nullable=True),
    Column("last_status", String(20), nullable=True),  # ok, failed
    Column("last_error", Text, nullable=True),
)
