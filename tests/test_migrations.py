"""Applying every migration yields exactly the schema the code declares, and applying them
again (`hookyard migrate`, and `serve` at every start) changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    MetaData,
    String,
    Table,
    func,
    insert,
    inspect,
    select,
    text,
)

from hookyard.alerts.evaluate import AlertEvaluator
from hookyard.alerts.tables import alerts
from hookyard.config import Settings
from hookyard.db.migrate import alembic_config, upgrade
from hookyard.db.schema import Id, UTCDateTime
from hookyard.db.tables import metadata  # every table module, imported
from hookyard.domain.leads.tables import leads
from hookyard.domain.whatsapp.tables import accounts as whatsapp_accounts
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


# -- 0015: the WhatsApp domain's alerts move to the one alert system ------------------------

T0 = datetime(2025, 12, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _tables_0014() -> tuple[Table, Table, Table]:
    """`whatsapp_templates`, `whatsapp_alerts` and `alerts` as 0014 left them (the columns
    this test writes)."""
    old = MetaData()
    wa_templates = Table(
        "whatsapp_templates", old,
        Column("id", Id, primary_key=True), Column("account_id", Id), Column("tenant", String),
        Column("meta_template_id", String), Column("name", String), Column("language", String),
        Column("quality", String), Column("status", String), Column("created_at", UTCDateTime()),
        Column("updated_at", UTCDateTime()),
    )  # fmt: skip
    wa_alerts = Table(
        "whatsapp_alerts", old,
        Column("id", Id, primary_key=True), Column("tenant", String), Column("template_id", Id),
        Column("kind", String), Column("event_id", Id), Column("detail", String),
        Column("created_at", UTCDateTime()), Column("acknowledged_at", UTCDateTime()),
        Column("acknowledged_by", String),
    )  # fmt: skip
    return wa_templates, wa_alerts, alerts


def test_0015_moves_the_whatsapp_alerts_into_alerts_and_back(
    empty_engine: Engine, settings: Settings
) -> None:
    upgrade(empty_engine, "0014")
    wa_templates, wa_alerts, rule_alerts = _tables_0014()
    with empty_engine.begin() as tx:
        tx.execute(insert(whatsapp_accounts).values(id=1, waba_id="111", created_at=T0))
        tx.execute(insert(wa_templates), [
            {"id": 1, "account_id": 1, "tenant": "acme", "meta_template_id": "5001",
             "name": "order_update", "language": "en_US", "quality": "RED", "status": "APPROVED",
             "created_at": T0, "updated_at": T0},
            {"id": 2, "account_id": 1, "tenant": "acme", "meta_template_id": "5002",
             "name": "promo", "language": None, "quality": "GREEN", "status": "DISABLED",
             "created_at": T0, "updated_at": T0},
            {"id": 3, "account_id": 1, "tenant": "globex", "meta_template_id": "6001",
             "name": "notice", "language": None, "quality": "RED", "status": "APPROVED",
             "created_at": T0, "updated_at": T0},
        ])  # fmt: skip
        # The rules already had order_update's RED quality open, nobody on it.
        tx.execute(insert(rule_alerts).values(
            kind="red_quality", tenant="acme", subject="template:1",
            labels={"template": "5001", "tenant": "acme"}, open_key="red_quality|acme|template:1",
            value=1.0, threshold=1.0, detail="WhatsApp template order_update (en_US) [5001] has "
            "quality RED", opened_at=T0 + HOUR, last_seen_at=T0 + HOUR,
        ))  # fmt: skip
        unacknowledged = {"acknowledged_at": None, "acknowledged_by": None}
        tx.execute(insert(wa_alerts), [unacknowledged | row for row in (
            # order_update went RED, recovered, went RED again (acknowledged by user:7).
            {"id": 1, "tenant": "acme", "template_id": 1, "kind": "RED_QUALITY", "event_id": 10,
             "detail": "quality GREEN -> RED", "created_at": T0},
            {"id": 2, "tenant": "acme", "template_id": 1, "kind": "RED_QUALITY", "event_id": 20,
             "detail": "quality GREEN -> RED", "created_at": T0 + HOUR,
             "acknowledged_at": T0 + 2 * HOUR, "acknowledged_by": "user:7"},
            # promo: rejected once (acknowledged), now disabled (open).
            {"id": 3, "tenant": "acme", "template_id": 2, "kind": "REJECTED", "event_id": 5,
             "detail": "INVALID_FORMAT", "created_at": T0 - HOUR,
             "acknowledged_at": T0, "acknowledged_by": "user:8"},
            {"id": 4, "tenant": "acme", "template_id": 2, "kind": "DISABLED", "event_id": 30,
             "detail": "policy", "created_at": T0},
            {"id": 5, "tenant": "globex", "template_id": 3, "kind": "RED_QUALITY", "event_id": 40,
             "detail": "quality YELLOW -> RED", "created_at": T0},
        )])  # fmt: skip

    upgrade(empty_engine)
    assert not inspect(empty_engine).has_table("whatsapp_alerts")
    moved = _alerts_of(empty_engine)
    assert [
        (a["kind"], a["tenant"], a["subject"], a["open_key"] is not None, a["acknowledged_by"])
        for a in moved
    ] == [
        # The rules' open alert stays the one open, with the newest moved one's acknowledgement.
        ("red_quality", "acme", "template:1", True, "user:7"),
        ("red_quality", "acme", "template:1", False, None),  # the earlier episode: resolved
        ("template_rejected", "acme", "template:2", True, "user:8"),  # acknowledged stays so
        ("template_disabled", "acme", "template:2", True, None),  # open stays open
        ("red_quality", "globex", "template:3", True, None),
    ]
    rules, earlier, rejected, disabled, globex = moved
    assert rules["id"] == 1 and rules["acknowledged_at"] == T0 + 2 * HOUR
    assert (earlier["opened_at"], earlier["resolved_at"]) == (T0, T0 + HOUR)
    assert earlier["detail"] == (
        "WhatsApp template order_update (en_US) [5001] has quality RED: quality GREEN -> RED"
        " (event 10)"
    )
    assert disabled["detail"] == "WhatsApp template promo [5002] is DISABLED: policy (event 30)"
    assert disabled["open_key"] == "template_disabled|acme|template:2"
    assert disabled["labels"] == {"template": "5002", "tenant": "acme"}
    assert (disabled["opened_at"], disabled["resolved_at"]) == (T0, None)
    assert globex["open_key"] == "red_quality|globex|template:3"
    assert rejected["acknowledged_at"] == T0

    # The rules' next evaluation: promo is no longer REJECTED, the rest still are so.
    AlertEvaluator(empty_engine, settings).run()
    states = {(a["kind"], a["subject"]): a for a in _alerts_of(empty_engine) if a["open_key"]}
    assert set(states) == {
        ("red_quality", "template:1"),
        ("template_disabled", "template:2"),
        ("red_quality", "template:3"),
    }
    assert states["red_quality", "template:1"]["acknowledged_by"] == "user:7"

    # Downgrade: the unresolved template alerts go back, the new kinds leave `alerts`.
    command.downgrade(alembic_config(empty_engine), "0014")
    with empty_engine.connect() as conn:
        back = conn.execute(
            select(wa_alerts.c.template_id, wa_alerts.c.kind, wa_alerts.c.acknowledged_by)
            .order_by(wa_alerts.c.id)
        ).all()  # fmt: skip
        kinds = conn.execute(select(rule_alerts.c.kind).distinct()).scalars().all()
    assert back == [(1, "RED_QUALITY", "user:7"), (2, "DISABLED", None), (3, "RED_QUALITY", None)]
    assert kinds == ["red_quality"]


def _alerts_of(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(alerts).order_by(alerts.c.id)).mappings()]


# -- 0016: customers are tenants ------------------------------------------------------------


def _tables_0015() -> tuple[Table, Table, Table]:
    """`tenants`, `crm_customers` and `crm_sync_log` as 0015 left them (the columns this
    test writes)."""
    old = MetaData()
    tenants = Table(
        "tenants", old,
        Column("id", String, primary_key=True), Column("name", String), Column("ban", String),
        Column("created_at", UTCDateTime()),
    )  # fmt: skip
    customers = Table(
        "crm_customers", old,
        Column("id", Id, primary_key=True), Column("tenant", String), Column("ban", String),
        Column("company_name", String), Column("status", String),
        Column("customer_type", String), Column("current_balance_cents", Id),
        Column("service_voice", Boolean), Column("service_messaging", Boolean),
        Column("service_telecom_data", Boolean), Column("created_at", UTCDateTime()),
        Column("updated_at", UTCDateTime()),
    )  # fmt: skip
    log = Table(
        "crm_sync_log", old,
        Column("id", Id, primary_key=True), Column("tenant", String),
        Column("customer_id", Id), Column("ban", String), Column("direction", String),
        Column("operation", String), Column("result", String), Column("at", UTCDateTime()),
    )  # fmt: skip
    return tenants, customers, log


def test_0016_gives_every_customer_its_tenant(empty_engine: Engine) -> None:
    upgrade(empty_engine, "0015")
    tenants, customers, log = _tables_0015()

    def customer(cid: int, tenant: str | None, ban: str, name: str) -> dict[str, Any]:
        return {"id": cid, "tenant": tenant, "ban": ban, "company_name": name,
                "status": "active", "customer_type": "business", "current_balance_cents": 0,
                "service_voice": False, "service_messaging": False,
                "service_telecom_data": False, "created_at": T0 + cid * HOUR,
                "updated_at": T0}  # fmt: skip

    with empty_engine.begin() as tx:
        tx.execute(insert(tenants), [
            {"id": "acme", "name": "Acme", "ban": "AC000000001", "created_at": T0},
            {"id": "globex", "name": "Globex", "ban": None, "created_at": T0},
            {"id": "ringer-networks", "name": "Taken", "ban": None, "created_at": T0},
            {"id": "held", "name": "Held", "ban": "HD000000001", "created_at": T0},
        ])  # fmt: skip
        tx.execute(insert(customers), [
            customer(1, "acme", "AC000000002", "Acme Second"),  # acme keeps its BAN
            customer(2, "globex", "GX000000002", "Globex Networks"),  # globex takes it
            customer(3, "globex", "GX000000003", "Globex Voice"),  # only the first's
            customer(4, "initech", "IN000000001", "Initech"),  # no such tenant: made
            customer(5, None, "RN000000001", "Ringer Networks"),  # no tenant: a new one
            customer(6, None, "HD000000001", "Held Corp"),  # its BAN is a tenant's
            customer(7, None, "RN000000002", "Ringer Networks"),
        ])  # fmt: skip
        tx.execute(insert(log), [
            {"id": 1, "tenant": None, "customer_id": 5, "ban": "RN000000001",
             "direction": "out", "operation": "create", "result": "ok", "at": T0},
            {"id": 2, "tenant": "acme", "customer_id": 1, "ban": "AC000000002",
             "direction": "out", "operation": "create", "result": "ok", "at": T0},
        ])  # fmt: skip

    upgrade(empty_engine)
    with empty_engine.connect() as conn:
        made = {r.id: (r.name, r.ban) for r in conn.execute(select(tenants))}
        owners = dict(conn.execute(select(customers.c.id, customers.c.tenant)).all())
        logged = dict(conn.execute(select(log.c.id, log.c.tenant)).all())
    assert made == {
        "acme": ("Acme", "AC000000001"),
        "globex": ("Globex", "GX000000002"),
        "ringer-networks": ("Taken", None),
        "held": ("Held", "HD000000001"),
        "initech": ("Initech", "IN000000001"),
        "ringer-networks-2": ("Ringer Networks", "RN000000001"),
        "ringer-networks-3": ("Ringer Networks", "RN000000002"),
    }
    assert owners == {1: "acme", 2: "globex", 3: "globex", 4: "initech",
                      5: "ringer-networks-2", 6: "held", 7: "ringer-networks-3"}  # fmt: skip
    assert logged == {1: "ringer-networks-2", 2: "acme"}
    upgrade(empty_engine)  # again: nothing left to do
    command.downgrade(alembic_config(empty_engine), "0015")
    with empty_engine.connect() as conn:
        assert len(conn.execute(select(tenants)).all()) == 7


# -- 0018: `enriched_single_source` fits in leads.enrichment_status --------------------------


def _status_type(engine: Engine) -> str:
    [column] = [c for c in inspect(engine).get_columns("leads") if c["name"] == "enrichment_status"]
    return str(column["type"])


def test_0018_widens_the_enrichment_status_and_narrows_it_back(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    assert _status_type(empty_engine) == "VARCHAR(32)"
    row = {"c2s_lead_id": "l1", "status": "open", "contact_hash": "h", "enrichment_attempts": 1,
           "document": "12345678909", "created_at": T0, "updated_at": T0}  # fmt: skip
    with empty_engine.begin() as tx:
        tx.execute(insert(leads), [
            row | {"id": 1, "enrichment_status": "enriched_single_source"},
            row | {"id": 2, "c2s_lead_id": "l2", "enrichment_status": "done"},
        ])  # fmt: skip
    command.downgrade(alembic_config(empty_engine), "0018-1")
    assert _status_type(empty_engine) == "VARCHAR(20)"
    with empty_engine.connect() as conn:
        statuses = dict(conn.execute(text("SELECT id, enrichment_status FROM leads")).all())
        kept = conn.execute(text("SELECT document FROM leads WHERE id = 1")).scalar_one()
    assert statuses == {1: "unmatched", 2: "done"} and kept == "12345678909"
    upgrade(empty_engine)
    assert _status_type(empty_engine) == "VARCHAR(32)"
