"""Applying every migration yields exactly the schema the code declares, and applying them
again (`hookyard migrate`, and `serve` at every start) changes nothing."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, insert, inspect, select, text

import hookyard.domain  # noqa: F401  (the domain tables, so the comparison sees them)
from hookyard.db.migrate import alembic_config, upgrade
from hookyard.db.schema import metadata
from tests.handlers import effects


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = [
            d
            for d in compare_metadata(context, metadata)
            if not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == "test_effects")
        ]
    assert diff == []


def schema_of(engine: Engine) -> dict[str, Any]:
    """Every table with its columns, indexes, unique constraints and foreign keys, and the
    revisions in alembic_version."""
    inspector = inspect(engine)
    tables = {
        name: {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                for c in inspector.get_columns(name)
            ],
            "indexes": sorted(
                (i["name"] or "", str(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(name)
            ),
            "unique": sorted(
                (u["name"] or "", str(u["column_names"]))
                for u in inspector.get_unique_constraints(name)
            ),
            "foreign_keys": sorted(
                (f["name"] or "", str(f["constrained_columns"]), f["referred_table"])
                for f in inspector.get_foreign_keys(name)
            ),
        }
        for name in inspector.get_table_names()
    }
    with engine.connect() as conn:
        versions = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    return {"tables": tables, "versions": versions}


def test_upgrade_is_idempotent(engine: Engine) -> None:
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.begin() as conn:
        conn.execute(insert(effects).values(event_id=1, dedup_key="kept"))
    before = schema_of(engine)
    assert before["versions"] == [head] and "events" in before["tables"]
    upgrade(engine)
    assert schema_of(engine) == before
    upgrade(engine)
    assert schema_of(engine) == before
    with engine.connect() as conn:  # nothing was dropped and made again
        assert conn.execute(select(func.count()).select_from(effects)).scalar_one() == 1
