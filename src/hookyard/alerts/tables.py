"""Alerts and the values the rules last measured.

Migration 0012 creates exactly these tables (`tests/test_migrations.py` compares them).
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, Index, String, Table, Text, UniqueConstraint

from hookyard.db.schema import Id, UTCDateTime, metadata

# One row per firing of a rule about one subject, kept after it resolves (the history).
# `open_key` is "<kind>|<tenant>|<subject>" while the alert is unresolved and NULL after:
# the unique constraint then allows one open alert per rule and subject, on both engines
# (NULLs never collide), however many resolved ones precede it.
alerts = Table(
    "alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(40), nullable=False),  # AlertKind
    Column("tenant", String(100), nullable=True),  # None: a global alert (superadmins only)
    Column("subject", String(300), nullable=False),  # "source:meta", "template:12", "queue"
    Column("labels", JSON, nullable=False),  # the subject as metric labels: {"source": "meta"}
    Column("open_key", String(450), nullable=True),
    Column("value", Float, nullable=False),  # the latest value measured while firing
    Column("threshold", Float, nullable=False),  # the threshold it was compared with
    Column("detail", Text, nullable=False),  # what a person reads
    Column("opened_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),  # the latest evaluation it fired
    Column("resolved_at", UTCDateTime(), nullable=True),
    Column("acknowledged_at", UTCDateTime(), nullable=True),
    Column("acknowledged_by", String(200), nullable=True),
    UniqueConstraint("open_key"),
    Index(None, "tenant", "resolved_at"),
    Index(None, "kind", "resolved_at"),
)

# What each rule measured at its latest evaluation, one row per subject, replaced as a whole
# per rule. `/metrics` reads it in every process, so a scrape of any process shows the
# values the one evaluating process found.
alert_values = Table(
    "alert_values",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(40), nullable=False),
    Column("tenant", String(100), nullable=True),
    Column("subject", String(300), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("value", Float, nullable=False),
    Column("measured_at", UTCDateTime(), nullable=False),
    Index(None, "kind"),
)
