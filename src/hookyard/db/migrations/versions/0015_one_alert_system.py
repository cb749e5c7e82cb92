"""One alert system: the WhatsApp domain's alerts (`whatsapp_alerts`) move to `alerts`, the
alert rules' table, and `whatsapp_alerts` is dropped.

The three kinds it ever held: `RED_QUALITY` becomes `red_quality`, `DISABLED`
`template_disabled`, `REJECTED` `template_rejected`; the subject is `template:<id>`, the
detail names the template (and the event that raised the alert). An alert nobody
acknowledged stays open, an acknowledged one stays acknowledged; the rules' next evaluation
resolves those whose template is no longer RED, DISABLED or REJECTED, as it does every
alert of theirs.

`alerts` holds one unresolved alert per kind, tenant and subject (`open_key`). Of a template's
moved alerts of one kind, the newest is that one; an older one (an earlier transition, so
the template recovered in between) is kept resolved at the time the next was raised. Where
the rules already had that alert open (`red_quality`), theirs stays, taking the newest moved
alert's acknowledgement if it had none.

Downgrade recreates `whatsapp_alerts` holding the template kinds' unresolved alerts, and
deletes the `template_disabled` and `template_rejected` alerts from `alerts` (the code of
0014 knows neither kind). **Data is lost on downgrade**: the events that raised the alerts,
the resolved template alerts, and the history of the disabled and rejected ones.

Revision ID: 0015
Revises: 0014
"""

import itertools
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from hookyard.db.schema import Id, UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# The WhatsApp domain's kind -> the alert rules' kind, and what the rule's detail says.
KINDS = {
    "RED_QUALITY": "red_quality",
    "DISABLED": "template_disabled",
    "REJECTED": "template_rejected",
}
STATES = {
    "red_quality": "has quality RED",
    "template_disabled": "is DISABLED",
    "template_rejected": "is REJECTED",
}
NEW_KINDS = ["template_disabled", "template_rejected"]  # unknown to 0014's code
CHUNK = 500

# The columns this migration reads and writes, as of 0014.
_tables = sa.MetaData()
whatsapp_alerts = sa.Table(
    "whatsapp_alerts",
    _tables,
    sa.Column("id", Id, primary_key=True),
    sa.Column("tenant", sa.String(100)),
    sa.Column("template_id", Id),
    sa.Column("kind", sa.String(20)),
    sa.Column("event_id", Id),
    sa.Column("detail", sa.Text),
    sa.Column("created_at", UTCDateTime()),
    sa.Column("acknowledged_at", UTCDateTime()),
    sa.Column("acknowledged_by", sa.String(200)),
)
templates = sa.Table(
    "whatsapp_templates",
    _tables,
    sa.Column("id", Id, primary_key=True),
    sa.Column("meta_template_id", sa.String(64)),
    sa.Column("name", sa.String(512)),
    sa.Column("language", sa.String(20)),
)
alerts = sa.Table(
    "alerts",
    _tables,
    sa.Column("id", Id, primary_key=True),
    sa.Column("kind", sa.String(40)),
    sa.Column("tenant", sa.String(100)),
    sa.Column("subject", sa.String(300)),
    sa.Column("labels", sa.JSON),
    sa.Column("open_key", sa.String(450)),
    sa.Column("value", sa.Float),
    sa.Column("threshold", sa.Float),
    sa.Column("detail", sa.Text),
    sa.Column("opened_at", UTCDateTime()),
    sa.Column("last_seen_at", UTCDateTime()),
    sa.Column("resolved_at", UTCDateTime()),
    sa.Column("acknowledged_at", UTCDateTime()),
    sa.Column("acknowledged_by", sa.String(200)),
)
alert_values = sa.Table(
    "alert_values", _tables, sa.Column("id", Id, primary_key=True), sa.Column("kind", sa.String(40))
)


def upgrade() -> None:
    conn = op.get_bind()
    moved = conn.execute(
        sa.select(
            whatsapp_alerts, templates.c.meta_template_id, templates.c.name, templates.c.language
        )
        .select_from(
            whatsapp_alerts.join(templates, templates.c.id == whatsapp_alerts.c.template_id)
        )
        .where(whatsapp_alerts.c.kind.in_(sorted(KINDS)))
        .order_by(whatsapp_alerts.c.id)
    ).mappings()
    by_key: dict[str, list[dict[str, Any]]] = {}
    for row in map(dict, moved):
        by_key.setdefault(_open_key(row), []).append(row)
    already = {
        row.open_key: row
        for row in conn.execute(
            sa.select(alerts.c.id, alerts.c.open_key, alerts.c.acknowledged_at).where(
                alerts.c.open_key.is_not(None), alerts.c.kind.in_(sorted(STATES))
            )
        )
    }
    new: list[dict[str, Any]] = []
    for key, rows in by_key.items():
        for older, newer in itertools.pairwise(rows):
            new.append(_alert(older, None, max(older["created_at"], newer["created_at"])))
        newest = rows[-1]
        theirs = already.get(key)
        if theirs is None:
            new.append(_alert(newest, key, None))
        elif theirs.acknowledged_at is None and newest["acknowledged_at"] is not None:
            conn.execute(
                sa.update(alerts)
                .where(alerts.c.id == theirs.id)
                .values(
                    acknowledged_at=newest["acknowledged_at"],
                    acknowledged_by=newest["acknowledged_by"],
                )
            )
    for start in range(0, len(new), CHUNK):
        conn.execute(sa.insert(alerts), new[start : start + CHUNK])
    op.drop_table("whatsapp_alerts")


def _open_key(row: Mapping[str, Any]) -> str:
    """hookyard.alerts.evaluate.open_key of the alert a row becomes."""
    return f"{KINDS[row['kind']]}|{row['tenant'] or ''}|template:{row['template_id']}"


def _alert(row: Mapping[str, Any], key: str | None, resolved_at: datetime | None) -> dict[str, Any]:
    kind = KINDS[row["kind"]]
    detail = (
        f"WhatsApp template {row['name']}"
        + (f" ({row['language']})" if row["language"] else "")
        + f" [{row['meta_template_id']}] {STATES[kind]}"
        + (f": {row['detail']}" if row["detail"] else "")
        + (f" (event {row['event_id']})" if row["event_id"] is not None else "")
    )
    return {
        "kind": kind,
        "tenant": row["tenant"],
        "subject": f"template:{row['template_id']}",
        "labels": {"template": row["meta_template_id"], "tenant": row["tenant"] or ""},
        "open_key": key,
        "value": 1.0,
        "threshold": 1.0,
        "detail": detail,
        "opened_at": row["created_at"],
        "last_seen_at": row["created_at"],
        "resolved_at": resolved_at,
        "acknowledged_at": row["acknowledged_at"],
        "acknowledged_by": row["acknowledged_by"],
    }


def downgrade() -> None:
    op.create_table(
        "whatsapp_alerts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(100), nullable=True),
        sa.Column("template_id", Id, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("event_id", Id, nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("acknowledged_at", UTCDateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_whatsapp_alerts"),
        sa.ForeignKeyConstraint(
            ["template_id"], ["whatsapp_templates.id"], name="fk_whatsapp_alerts_template_id"
        ),
        sa.UniqueConstraint("event_id", "kind", name="uq_whatsapp_alerts_event_id_kind"),
    )
    op.create_index(
        "ix_whatsapp_alerts_tenant_acknowledged_at",
        "whatsapp_alerts",
        ["tenant", "acknowledged_at"],
    )
    op.create_index("ix_whatsapp_alerts_template_id", "whatsapp_alerts", ["template_id"])
    conn = op.get_bind()
    legacy = {new: old for old, new in KINDS.items()}
    unresolved = conn.execute(
        sa.select(alerts)
        .where(alerts.c.kind.in_(sorted(legacy)), alerts.c.resolved_at.is_(None))
        .order_by(alerts.c.id)
    ).mappings()
    back = [
        {
            "tenant": row["tenant"],
            "template_id": int(template_id),
            "kind": legacy[row["kind"]],
            "event_id": None,
            "detail": row["detail"],
            "created_at": row["opened_at"],
            "acknowledged_at": row["acknowledged_at"],
            "acknowledged_by": row["acknowledged_by"],
        }
        for row in unresolved
        if (template_id := row["subject"].removeprefix("template:")).isdigit()
    ]
    known = set(
        conn.execute(
            sa.select(templates.c.id).where(
                templates.c.id.in_(sorted({r["template_id"] for r in back}))
            )
        ).scalars()
    )
    back = [r for r in back if r["template_id"] in known]
    for start in range(0, len(back), CHUNK):
        conn.execute(sa.insert(whatsapp_alerts), back[start : start + CHUNK])
    conn.execute(sa.delete(alerts).where(alerts.c.kind.in_(NEW_KINDS)))
    conn.execute(sa.delete(alert_values).where(alert_values.c.kind.in_(NEW_KINDS)))
