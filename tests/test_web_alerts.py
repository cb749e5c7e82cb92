"""The dashboard's alerts page (`/ui/alerts`): each tenant's alerts by state and kind (global
ones for superadmins only), and a member acknowledging one through the API's own route.

The alerts are rows as the evaluator leaves them (`hookyard/alerts/tables.py`), written
directly: `tests/test_alerts.py` shows each rule opening them from real data, which takes
events dying through retries; here only what the page shows of them matters."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from hookyard.alerts.tables import alerts
from hookyard.runtime import Runtime
from tests.people import People
from tests.web_support import HTML, errors, login, page_of, post

T0 = datetime(2025, 12, 1, 12, 0, tzinfo=UTC)


@dataclass
class Alerts:
    dead: int  # acme's, open
    red: int  # acme's, acknowledged
    old: int  # acme's, resolved
    globex: int  # globex's, open
    queue: int  # global (no tenant), open


def add_alert(
    runtime: Runtime,
    kind: str,
    tenant: str | None,
    subject: str,
    *,
    value: float,
    threshold: float,
    detail: str,
    opened: datetime = T0,
    resolved: datetime | None = None,
    acknowledged_by: str | None = None,
) -> int:
    labels = {} if subject == "queue" else dict([subject.split(":", 1)])
    with runtime.engine.begin() as tx:
        inserted = tx.execute(
            insert(alerts)
            .values(
                kind=kind,
                tenant=tenant,
                subject=subject,
                labels=labels,
                # Set while unresolved: one open alert per rule and subject.
                open_key=None if resolved else f"{kind}|{tenant or ''}|{subject}",
                value=value,
                threshold=threshold,
                detail=detail,
                opened_at=opened,
                last_seen_at=resolved or opened + timedelta(minutes=5),
                resolved_at=resolved,
                acknowledged_at=opened + timedelta(minutes=1) if acknowledged_by else None,
                acknowledged_by=acknowledged_by,
            )
            .returning(alerts.c.id)
        )
        return int(inserted.scalar_one())


@pytest.fixture
def found(runtime: Runtime, people: People) -> Alerts:
    hour = timedelta(hours=1)
    return Alerts(
        old=add_alert(
            runtime, "failure_rate", "acme", "source:acme-hooks", value=0.5, threshold=0.2,
            detail="half of acme-hooks' deliveries failed", opened=T0 - 3 * hour,
            resolved=T0 - 2 * hour,
        ),
        dead=add_alert(
            runtime, "dead_events", "acme", "source:acme-poison", value=3, threshold=1,
            detail="3 dead events in acme-poison",
        ),
        red=add_alert(
            runtime, "red_quality", "acme", "template:12", value=1, threshold=1,
            detail="template order_update is RED", acknowledged_by="user:7",
        ),
        globex=add_alert(
            runtime, "dead_events", "globex", "source:globex-hooks", value=2, threshold=1,
            detail="2 dead events in globex-hooks",
        ),
        queue=add_alert(
            runtime, "oldest_pending", None, "queue", value=3600, threshold=600,
            detail="the oldest pending event waited an hour",
        ),
    )  # fmt: skip


def rows(html: str) -> dict[int, str]:
    """Alert id -> the text of its row."""
    found = re.findall(r'<tr data-alert-id="(\d+)">(.*?)</tr>', html, flags=re.S)
    return {int(i): re.sub(r"\s+", " ", row) for i, row in found}


def shown(api: TestClient, people: People, alert_id: int) -> dict[str, Any]:
    answer = api.get(f"/api/v1/alerts/{alert_id}", headers=people.superadmin())
    assert answer.status_code == 200, answer.text
    alert: dict[str, Any] = answer.json()
    return alert


# -- the list -------------------------------------------------------------------------------


def test_a_member_sees_the_tenants_open_alerts(api: TestClient, found: Alerts) -> None:
    html = page_of(login(api, "member@acme.example.com"), "/ui/alerts")
    listed = rows(html)
    assert list(listed) == [found.dead]  # open only, acme's only, no global one
    row = listed[found.dead]
    for text in (
        "<td>dead_events</td>",
        '<td class="mono">source:acme-poison</td>',
        '<span class="badge bad">open</span>',
        "<td>3 / 1</td>",
        "<td>3 dead events in acme-poison</td>",
        "<td>2025-12-01 12:00:00</td>",  # opened
        "<td>2025-12-01 12:05:00</td>",  # last seen
        ">Acknowledge</button>",
    ):
        assert text in row, text
    filtered = page_of(api, "/ui/alerts?kind=dead_events")
    assert f'action="/ui/alerts/{found.dead}/acknowledge?next=/ui/alerts%3Fkind%3Ddead_events"' in (
        filtered
    )  # back to the page as it was filtered
    assert "data-live" not in html.split("<main>", 1)[1]  # alerts publish no live change


def test_the_state_and_kind_filters(api: TestClient, found: Alerts) -> None:
    login(api, "viewer@acme.example.com")
    acknowledged = rows(page_of(api, "/ui/alerts?state=acknowledged"))
    assert list(acknowledged) == [found.red]
    assert '<span class="badge wait">acknowledged</span>' in acknowledged[found.red]
    assert "user:7 <small>2025-12-01 12:01:00</small>" in acknowledged[found.red]
    resolved = rows(page_of(api, "/ui/alerts?state=resolved"))
    assert list(resolved) == [found.old]
    assert "<td>0.5 / 0.2</td>" in resolved[found.old]
    assert '<span class="badge good">resolved</span>' in resolved[found.old]
    assert list(rows(page_of(api, "/ui/alerts?state=all"))) == [found.red, found.dead, found.old]
    assert list(rows(page_of(api, "/ui/alerts?state=all&kind=failure_rate"))) == [found.old]
    assert "No open alerts." in page_of(api, "/ui/alerts?kind=red_quality")
    for query in ("state=closed", "kind=RED_QUALITY", "before_id=0", f"before_id={2**63}"):
        assert errors(page_of(api, f"/ui/alerts?{query}", 400)), query


def test_a_superadmin_sees_global_alerts_only_when_acting_for_no_tenant(
    api: TestClient, found: Alerts
) -> None:
    login(api, "root@example.com")
    listed = rows(page_of(api, "/ui/alerts"))
    assert list(listed) == [found.queue, found.globex, found.dead]
    assert "<td>global</td>" in listed[found.queue] and "<td>3600 / 600</td>" in listed[found.queue]
    assert "<td>globex</td>" in listed[found.globex]
    picked = api.post(
        "/ui/tenant",
        data={"csrf": api.cookies["hookyard_csrf"], "tenant": "globex"},
        headers=HTML,
        follow_redirects=False,
    )
    assert picked.status_code == 303
    assert list(rows(page_of(api, "/ui/alerts"))) == [found.globex]


def test_paging_goes_on_from_the_last_alert(
    api: TestClient, runtime: Runtime, found: Alerts
) -> None:
    for n in range(50):
        add_alert(runtime, "dead_events", "acme", f"source:s{n}", value=1, threshold=1,
                  detail=f"dead in s{n}")  # fmt: skip
    login(api, "viewer@acme.example.com")
    first = page_of(api, "/ui/alerts")
    assert len(rows(first)) == 50 and found.dead not in rows(first)
    [older] = re.findall(r'<p class="pager"><a href="\?([^"]+)">Older', first)
    assert list(rows(page_of(api, "/ui/alerts?" + older.replace("&amp;", "&")))) == [found.dead]


# -- acknowledging --------------------------------------------------------------------------


def test_a_member_acknowledges_an_open_alert(
    api: TestClient, people: People, found: Alerts
) -> None:
    login(api, "member@acme.example.com")
    answer = post(api, f"/ui/alerts/{found.dead}/acknowledge?next=/ui/alerts%3Fstate%3Dall")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/alerts?state=all&notice=acknowledged"
    member = api.get("/api/v1/me", headers=people.headers("acme", "member")).json()["subject"]
    alert = shown(api, people, found.dead)
    assert (alert["state"], alert["acknowledged_by"]) == ("acknowledged", member)

    html = page_of(api, answer.headers["location"])
    assert "Acknowledged." in html
    row = rows(html)[found.dead]
    assert '<span class="badge wait">acknowledged</span>' in row and member in row
    assert "Acknowledge</button>" not in html  # nothing open is left to acknowledge
    assert rows(page_of(api, "/ui/alerts")) == {}


def test_a_viewer_gets_no_button_and_cannot_acknowledge(
    api: TestClient, people: People, found: Alerts
) -> None:
    login(api, "viewer@acme.example.com")
    html = page_of(api, "/ui/alerts")
    assert found.dead in rows(html) and "Acknowledge</button>" not in html
    refused = post(api, f"/ui/alerts/{found.dead}/acknowledge")
    assert refused.status_code == 403 and errors(refused.text) == ["this needs the member role"]
    assert shown(api, people, found.dead)["state"] == "open"


def test_another_tenants_or_a_global_alert_is_a_404_and_bad_ids_are_refused(
    api: TestClient, people: People, found: Alerts
) -> None:
    login(api, "admin@acme.example.com")
    for other in (found.globex, found.queue, 999999):
        refused = post(api, f"/ui/alerts/{other}/acknowledge")
        assert refused.status_code == 404 and errors(refused.text) == [f"no alert {other}"]
    assert [shown(api, people, a)["state"] for a in (found.globex, found.queue)] == ["open"] * 2
    for bad in ("0", str(2**63)):
        assert post(api, f"/ui/alerts/{bad}/acknowledge").status_code == 400
    assert post(api, "/ui/alerts/abc/acknowledge").status_code == 404


def test_a_form_without_its_csrf_token_or_from_another_site_is_refused(
    api: TestClient, people: People, found: Alerts
) -> None:
    login(api, "member@acme.example.com")
    stale = api.post(
        f"/ui/alerts/{found.dead}/acknowledge", data={}, headers=HTML, follow_redirects=False
    )
    assert stale.status_code == 403
    other_site = api.post(
        f"/ui/alerts/{found.dead}/acknowledge",
        data={"csrf": api.cookies["hookyard_csrf"]},
        headers=HTML | {"origin": "https://elsewhere.example"},
        follow_redirects=False,
    )
    assert other_site.status_code == 403
    assert shown(api, people, found.dead)["state"] == "open"


def test_logged_out_people_are_sent_to_the_login_page(api: TestClient, found: Alerts) -> None:
    answer = api.get("/ui/alerts", headers=HTML, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login?next=%2Fui%2Falerts"
