"""Handlers the tests mount on generic sources (`handler = "tests.handlers:NAME"`).

Effects are rows in `test_effects`, written in the worker's transaction, so counting them
counts exactly what committed.
"""

from __future__ import annotations

import time

from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, insert, text

from hookyard.providers.base import Outcome, StoredEvent

test_metadata = MetaData()
effects = Table(
    "test_effects",
    test_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", Integer, nullable=False),
    Column("dedup_key", String(300), nullable=False),
    Column("worker_pid", Integer, nullable=True),
)


def record_effect(event: StoredEvent, tx: Connection) -> Outcome:
    payload = event.payload if isinstance(event.payload, dict) else {}
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    if data.get("fail"):
        raise RuntimeError(f"asked to fail: {data.get('fail')}")
    if sleep := data.get("sleep"):
        time.sleep(float(sleep))
    if data.get("slow_sql"):  # a statement that runs for minutes unless cancelled
        if tx.dialect.name == "postgresql":
            tx.execute(text("SELECT pg_sleep(600)"))
        else:
            tx.execute(
                text(
                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c"
                    " LIMIT 10000000000) SELECT count(*) FROM c"
                )
            )
    import os

    tx.execute(
        insert(effects).values(event_id=event.id, dedup_key=event.dedup_key, worker_pid=os.getpid())
    )
    return Outcome.DONE


def always_fail(event: StoredEvent, tx: Connection) -> Outcome:
    raise ValueError(f"poison event {event.id}")
