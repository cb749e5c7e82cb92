"""The record of every reconciliation run (the scheduler's jobs: `hookyard.queue.tables`).

Migration 0009 creates exactly these tables (`tests/test_migrations.py` compares them).
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Index, Integer, String, Table, Text

from hookyard.db.schema import Id, UTCDateTime, metadata

reconciliation_runs = Table(
    "reconciliation_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("provider", String(20), nullable=False),
    Column("job", String(100), nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("status", String(20), nullable=False),  # running, ok, failed
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("checked", Integer, nullable=False),  # entities compared
    Column("drift", Integer, nullable=False),  # differences found
    Column("fed", Integer, nullable=False),  # events fed to the inbox / changes queued
    Column("details", JSON(none_as_null=True), nullable=True),  # the drift, capped
    Column("error", Text, nullable=True),
    Index(None, "provider", "started_at"),
)
