"""C2S leads in the delivery statistics: per UTC day, the events received per `hook_action`
and the leads whose enrichment ended per outcome, in `GET /api/v1/stats/deliveries` and on
the Deliveries page; every day of the window, zero included; only the scope's tenant."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from hookyard.domain.leads.tables import leads
from hookyard.runtime import Runtime
from tests.people import People
from tests.support import add
from tests.web_support import HTML, login

D1 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
D3 = datetime(2024, 5, 3, 23, 59, 59, 500_000, tzinfo=UTC)  # still May 3rd
WINDOW = {"since": "2024-04-30T00:00:00Z", "until": "2024-05-05T00:00:00Z"}
ACTIONS = ("on_create_lead", "on_update_lead", "on_close_lead", "other")
OUTCOMES = ("done", "enriched_single_source", "unmatched", "not_same_person", "failed")


def c2s_events(runtime: Runtime, tenant: str, at: datetime, **per_action: int) -> None:
    for action, n in per_action.items():
        add(runtime, tenant, "c2s", n, event_type=action, at=at, provider="c2s")


_ids = iter(range(1, 10_000))


def lead(runtime: Runtime, tenant: str | None, status: str, finished: datetime | None) -> None:
    i = next(_ids)
    with runtime.engine.begin() as tx:
        tx.execute(
            insert(leads).values(
                tenant=tenant, c2s_lead_id=f"lead-{tenant}-{i}", status="open",
                contact_hash="h", enrichment_status=status, enrichment_attempts=1,
                enrichment_finished_at=finished, created_at=D1, updated_at=D1,
            )
        )  # fmt: skip


@pytest.fixture
def c2s(runtime: Runtime) -> None:
    c2s_events(runtime, "acme", D1, on_create_lead=3, on_update_lead=2, on_close_lead=1)
    c2s_events(runtime, "acme", D3, on_create_lead=1, on_something_new=2)
    add(runtime, "acme", "acme-hooks", 4, at=D1)  # not C2S: not a hook_action
    lead(runtime, "acme", "done", D1)
    lead(runtime, "acme", "done", D1 + timedelta(hours=1))
    lead(runtime, "acme", "enriched_single_source", D1)
    lead(runtime, "acme", "enriched_single_source", D3)
    lead(runtime, "acme", "unmatched", D3)
    lead(runtime, "acme", "not_same_person", D3)
    lead(runtime, "acme", "failed", D3)
    lead(runtime, "acme", "pending", None)  # not ended: not an outcome
    lead(runtime, "acme", "done", D1 - timedelta(days=10))  # before the window
    # globex's, on the same days: never in acme's numbers.
    c2s_events(runtime, "globex", D1, on_create_lead=7, on_close_lead=5)
    lead(runtime, "globex", "done", D1)
    lead(runtime, "globex", "enriched_single_source", D1)
    lead(runtime, "globex", "unmatched", D3)


def stats(api: TestClient, headers: dict[str, str], **params: str) -> dict[str, Any]:
    response = api.get("/api/v1/stats/deliveries", params=WINDOW | params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def counts(body: dict[str, Any]) -> dict[str, tuple[dict[str, int], dict[str, int]]]:
    return {d["day"]: (d["hook_actions"], d["enrichment"]) for d in body["leads"]}


def zero(keys: tuple[str, ...], **n: int) -> dict[str, int]:
    return dict.fromkeys(keys, 0) | n


@pytest.mark.usefixtures("c2s")
def test_every_day_counts_hook_actions_and_enrichment_outcomes(
    api: TestClient, people: People
) -> None:
    body = stats(api, people.headers("acme", "viewer"))
    days = counts(body)
    assert list(days) == ["2024-04-30", "2024-05-01", "2024-05-02", "2024-05-03", "2024-05-04"]
    assert days["2024-05-01"] == (
        zero(ACTIONS, on_create_lead=3, on_update_lead=2, on_close_lead=1),
        zero(OUTCOMES, done=2, enriched_single_source=1),
    )
    assert days["2024-05-03"] == (
        zero(ACTIONS, on_create_lead=1, other=2),
        zero(OUTCOMES, enriched_single_source=1, unmatched=1, not_same_person=1, failed=1),
    )
    for quiet in ("2024-04-30", "2024-05-02", "2024-05-04"):  # zero days, every key there
        assert days[quiet] == (zero(ACTIONS), zero(OUTCOMES))
    # The keys keep their order: the catalogue's, then `other`; the outcomes as documented.
    assert list(body["leads"][0]["hook_actions"]) == list(ACTIONS)
    assert list(body["leads"][0]["enrichment"]) == list(OUTCOMES)


@pytest.mark.usefixtures("c2s")
def test_counts_are_the_scopes_tenants_only(api: TestClient, people: People) -> None:
    globex = counts(stats(api, people.headers("globex", "viewer")))
    assert globex["2024-05-01"] == (
        zero(ACTIONS, on_create_lead=7, on_close_lead=5),
        zero(OUTCOMES, done=1, enriched_single_source=1),
    )
    assert globex["2024-05-03"] == (zero(ACTIONS), zero(OUTCOMES, unmatched=1))
    everyone = counts(stats(api, people.superadmin()))
    assert everyone["2024-05-01"][0]["on_create_lead"] == 10
    assert everyone["2024-05-01"][1]["done"] == 3
    assert counts(stats(api, people.superadmin("acme"))) == counts(
        stats(api, people.headers("acme", "admin"))
    )


@pytest.mark.usefixtures("c2s")
def test_the_window_and_the_source_filter(api: TestClient, people: People) -> None:
    acme = people.headers("acme", "member")
    # A window ending mid-day includes that day; one ending at midnight does not.
    body = stats(api, acme, since="2024-05-01T12:00:00Z", until="2024-05-03T00:00:01Z")
    days = counts(body)
    assert list(days) == ["2024-05-01", "2024-05-02", "2024-05-03"]
    # Counted from 12:00 on: the 10:00 events and the 10:00 and 11:00 outcomes are out.
    assert days["2024-05-01"] == (zero(ACTIONS), zero(OUTCOMES))
    assert days["2024-05-03"] == (zero(ACTIONS), zero(OUTCOMES))  # 23:59:59 is after until
    assert list(counts(stats(api, acme, until="2024-05-04T00:00:00Z"))) == [
        "2024-04-30", "2024-05-01", "2024-05-02", "2024-05-03",
    ]  # fmt: skip
    # The source filter applies to the events; the outcomes are the tenant's leads'.
    other = counts(stats(api, acme, source="acme-hooks"))
    assert other["2024-05-01"] == (zero(ACTIONS), zero(OUTCOMES, done=2, enriched_single_source=1))
    backwards = stats(api, acme, since="2024-05-05T00:00:00Z", until="2024-04-30T00:00:00Z")
    assert backwards["leads"] == []
    # By default the last 7 days: 8 UTC days touched, none with anything.
    recent = api.get("/api/v1/stats/deliveries", headers=acme).json()
    assert len(recent["leads"]) == 8
    assert {(tuple(d["hook_actions"].values()), tuple(d["enrichment"].values()))
            for d in recent["leads"]} == {((0,) * 4, (0,) * 5)}  # fmt: skip


def test_the_page_shows_a_table_per_day(api: TestClient, runtime: Runtime, people: People) -> None:
    login(api, "viewer@acme.example.com")
    empty = api.get("/ui/stats?days=7", headers=HTML).text
    assert "No C2S lead events and no enrichment ended in this window." in empty
    assert '<table class="grid" id="lead-stats">' not in empty

    today = datetime.now(UTC)
    two_days_ago = today - timedelta(days=2)
    c2s_events(runtime, "acme", two_days_ago, on_create_lead=2, on_close_lead=1)
    lead(runtime, "acme", "enriched_single_source", two_days_ago)
    lead(runtime, "acme", "done", today)
    # globex's, on the same days: not on acme's page.
    c2s_events(runtime, "globex", two_days_ago, on_create_lead=9)
    lead(runtime, "globex", "unmatched", two_days_ago)
    page = api.get("/ui/stats?days=7", headers=HTML).text
    table = re.search(r'<table class="grid" id="lead-stats">.*?</table>', page, re.S)
    assert table is not None
    header = re.findall(r"<th>([a-z_]+)</th>", table.group(0))
    assert header == [*ACTIONS, *OUTCOMES]
    rows = {
        day: {k: int(v) for k, v in re.findall(r'data-\w+="([a-z_]+)">(\d+)<', row)}
        for day, row in re.findall(r'<tr data-day="([\d-]+)">(.*?)</tr>', table.group(0), re.S)
    }
    assert len(rows) == 7  # every day, zero included
    assert list(rows) == sorted(rows, reverse=True)  # newest first, as the deliveries
    assert rows[two_days_ago.date().isoformat()] == zero(
        ACTIONS, on_create_lead=2, on_close_lead=1
    ) | zero(OUTCOMES, enriched_single_source=1)
    assert rows[today.date().isoformat()] == zero(ACTIONS) | zero(OUTCOMES, done=1)
    assert sum(sum(r.values()) for r in rows.values()) == 5

    login(api, "viewer@globex.example.com")
    theirs = api.get("/ui/stats?days=7", headers=HTML).text
    found = re.search(rf'<tr data-day="{two_days_ago.date().isoformat()}">(.*?)</tr>', theirs, re.S)
    assert found is not None and 'data-action="on_create_lead">9<' in found.group(1)
    assert 'data-outcome="unmatched">1<' in found.group(1)
