"""Meta WhatsApp: the template reconciler (status and quality of every known account's
templates, as the Graph API reports them)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from hookyard.domain.whatsapp.service import QUALITY_FIELD, STATUS_FIELD, TemplateStatus
from hookyard.domain.whatsapp.tables import accounts, templates
from hookyard.sync.meta_api import MetaClient
from hookyard.sync.reconcile import Drift, Finding

# A template in one of these states stays there unless someone acts: the hourly job skips
# them; `hookyard reconcile meta` (scope "all") checks them too.
FINAL = frozenset(
    {
        TemplateStatus.APPROVED,
        TemplateStatus.REJECTED,
        TemplateStatus.DISABLED,
        TemplateStatus.DELETED,
        TemplateStatus.ARCHIVED,
    }
)


@dataclass
class TemplateReconciler:
    engine: Engine
    client: MetaClient
    scope: str = "all"  # "open": only templates not in a final state (and unknown ones)
    provider: str = "meta"

    @property
    def job(self) -> str:
        return f"meta.templates.{self.scope}"

    def check(self) -> Iterator[Finding]:
        with self.engine.connect() as conn:
            wabas = conn.execute(
                select(accounts.c.id, accounts.c.waba_id, accounts.c.tenant).order_by(accounts.c.id)
            ).all()
            ours = {
                row["meta_template_id"]: row
                for row in conn.execute(
                    select(
                        templates.c.meta_template_id,
                        templates.c.status,
                        templates.c.quality,
                        templates.c.account_id,
                    )
                ).mappings()
            }
        for account_id, waba_id, tenant in wabas:
            for remote in self.client.templates(waba_id):
                row = ours.get(str(remote.get("id")))
                if row is not None and row["account_id"] != account_id:
                    continue  # another account's template: never this one's to change
                if self.scope == "open" and row is not None and row["status"] in FINAL:
                    continue
                yield self._check(waba_id, tenant, remote, row)

    def _check(self, waba_id: str, tenant: str | None, remote: dict[str, Any], row: Any) -> Finding:
        template_id = str(remote.get("id"))
        entity = f"template:{template_id}"
        common = {
            "message_template_id": template_id,
            "message_template_name": remote.get("name"),
            "message_template_language": remote.get("language"),
        }
        drift: list[Drift] = []
        changes: list[dict[str, Any]] = []
        status = remote.get("status")
        ours_status = None if row is None else row["status"]
        if isinstance(status, str) and status.upper() != ours_status:
            drift.append(Drift(entity, "status", ours_status, status.upper()))
            value = {"event": status.upper(), **common}
            if isinstance(remote.get("rejected_reason"), str):
                value["reason"] = remote["rejected_reason"]
            changes.append({"field": STATUS_FIELD, "value": value})
        quality = (remote.get("quality_score") or {}).get("score")
        ours_quality = None if row is None else row["quality"]
        if isinstance(quality, str) and quality.upper() != (ours_quality or "UNKNOWN"):
            drift.append(Drift(entity, "quality", ours_quality, quality.upper()))
            changes.append(
                {
                    "field": QUALITY_FIELD,
                    "value": {
                        "previous_quality_score": ours_quality or "UNKNOWN",
                        "new_quality_score": quality.upper(),
                        **common,
                    },
                }
            )
        if not changes:
            return Finding(entity, tenant)
        # Meta's envelope, timed when the state was observed.
        envelope = {
            "object": "whatsapp_business_account",
            "entry": [{"id": waba_id, "time": int(time.time()), "changes": changes}],
        }
        body = json.dumps(envelope, separators=(",", ":")).encode()
        return Finding(entity, tenant, tuple(drift), (body,))
