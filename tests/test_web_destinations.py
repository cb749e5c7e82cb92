"""The dashboard's destinations pages (`/ui/destinations`, one destination with its
deliveries, one delivery with its attempts, an event's deliveries): what each tenant sees,
the health and circuit badges, and the admins' pause, resume, replay and discard through the API's
own routes (CSRF needed; a shared destination is a superadmin's to change)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from playwright.sync_api import Page, expect

from hookyard.destinations import manage
from hookyard.destinations.deliver import DeliveryJob
from hookyard.destinations.tables import deliveries, destinations
from hookyard.runtime import Runtime
from tests.browser_support import live, log_in
from tests.conftest import SOURCES_TOML
from tests.destinations_support import DESTINATION_SOURCES, add_delivery, ensure_destinations
from tests.people import People
from tests.support import add, row
from tests.web_support import HTML, errors, login, page_of, post, section, text

NOW = datetime.now(UTC)


@pytest.fixture
def sources_file(tmp_path: Path) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(SOURCES_TOML + DESTINATION_SOURCES)
    return path


def tried(outcome: str, latency: int | None, status: int | None, **more: Any) -> dict[str, Any]:
    return {"outcome": outcome, "latency_ms": latency, "status_code": status,
            "started_at": NOW - timedelta(minutes=3), **more}  # fmt: skip


@pytest.fixture
def made(runtime: Runtime, people: People) -> dict[str, int]:
    engine = runtime.engine
    ensure_destinations(engine, audit={"circuit": "open", "consecutive_failures": 5})
    [a1, a2] = add(runtime, "acme", n=2)
    [g1] = add(runtime, "globex", "globex-hooks")
    return {
        "event": a1,
        "dead": add_delivery(
            engine, "acme-billing", a1, "acme", status="dead", last_status_code=422,
            last_error="422 from the receiver",
            tries=[tried("retry", 1200, 503, response_excerpt="upstream busy"),
                   tried("dead", 40, 422, error="refused",
                         response_excerpt='{"email": "maria.test@example.com"}')],
        ),
        "ok": add_delivery(
            engine, "acme-billing", a2, "acme", status="delivered",
            tries=[tried("delivered", 35, 200, response_excerpt="thanks")],
        ),
        "shared": add_delivery(
            engine, "audit", a1, "acme", status="failed", tries=[tried("retry", None, None,
                                                                       error="timed out")],
        ),
        "globex": add_delivery(
            engine, "globex-billing", g1, "globex", status="dead", source="globex-hooks",
        ),
    }  # fmt: skip


def listed(html: str) -> dict[str, str]:
    """Destination name -> the text of its row."""
    found = re.findall(r'<tr data-destination="([^"]+)">(.*?)</tr>', html, flags=re.S)
    return {name: text(cells) for name, cells in found}


def delivery_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-delivery-id="(\d+)">', html)]


# -- the list -------------------------------------------------------------------------------


def test_the_menu_leads_to_the_tenants_destinations_with_their_health(
    api: TestClient, made: dict[str, int]
) -> None:
    html = page_of(login(api, "viewer@acme.example.com"), "/ui/destinations")
    assert '<a href="/ui/destinations" aria-current="page">Destinations</a>' in html
    rows = listed(html)
    assert set(rows) == {"acme-billing", "audit"}  # never globex's
    # acme-billing: 3 attempts, 2 failed → 33.3 %; p95 of [35, 40, 1200] is 1200 ms; 1 dead
    assert "active circuit closed 33.3 % of 3 1200 ms 0 1" in rows["acme-billing"]
    assert "billing:***@127.0.0.1" in rows["acme-billing"] and "pa55word" not in html
    # the shared one: acme's attempt only (a timeout: no latency), its circuit open
    assert "active circuit open 0.0 % of 1 — 1 0" in rows["audit"]
    assert rows["audit"].startswith("audit shared")
    assert 'data-circuit="open"' in html and 'class="badge bad" data-circuit="open"' in html
    assert 'data-live="event delivery destination"' in html


def test_a_superadmin_sees_every_destination(api: TestClient, made: dict[str, int]) -> None:
    rows = listed(page_of(login(api, "root@example.com"), "/ui/destinations"))
    assert set(rows) == {"acme-billing", "audit", "globex-billing"}


# -- a destination and a delivery -----------------------------------------------------------


def test_a_destination_page_lists_its_deliveries_by_status(
    api: TestClient, made: dict[str, int]
) -> None:
    client = login(api, "viewer@acme.example.com")
    html = page_of(client, "/ui/destinations/acme-billing")
    assert delivery_ids(section(html, "deliveries")) == [made["ok"], made["dead"]]
    assert "invoice.*" in text(section(html, "destination-summary"))
    dead = page_of(client, "/ui/destinations/acme-billing?status=dead")
    assert delivery_ids(dead) == [made["dead"]]
    assert "Replay every" not in dead and "Pause" not in dead  # a viewer changes nothing
    shared = page_of(client, "/ui/destinations/audit")
    assert delivery_ids(shared) == [made["shared"]]
    assert "next probe" in shared


def test_a_delivery_page_shows_every_attempt_masked_for_viewers(
    api: TestClient, made: dict[str, int]
) -> None:
    html = page_of(login(api, "viewer@acme.example.com"), f"/ui/deliveries/{made['dead']}")
    attempts = re.findall(r'<tr data-attempt="(\d+)">(.*?)</tr>', html, flags=re.S)
    assert [n for n, _ in attempts] == ["1", "2"]
    first, second = (text(cells) for _, cells in attempts)
    assert "503" in first and "1200 ms" in first and "upstream busy" in first
    assert "422" in second and "refused" in second and "m***@example.com" in second
    assert "maria" not in html and f"dlv_{made['dead']}" in html
    assert "(personal data masked)" in html
    member = page_of(login(api, "member@acme.example.com"), f"/ui/deliveries/{made['dead']}")
    assert "maria.test@example.com" in member and "Replay</button>" not in member


def test_an_event_page_shows_its_deliveries(api: TestClient, made: dict[str, int]) -> None:
    html = page_of(login(api, "viewer@acme.example.com"), f"/ui/events/{made['event']}")
    part = section(html, "event-deliveries")
    assert delivery_ids(part) == [made["shared"], made["dead"]]
    assert "acme-billing" in part and "audit" in part


@pytest.mark.parametrize(
    "path",
    [
        "/ui/destinations/globex-billing",
        "/ui/destinations/nowhere",
        "/ui/deliveries/{globex}",
        "/ui/deliveries/999999",
    ],
)
def test_another_tenants_pages_are_404(api: TestClient, made: dict[str, int], path: str) -> None:
    login(api, "admin@acme.example.com")
    answer = api.get(path.format(**made), headers=HTML, follow_redirects=False)
    assert answer.status_code == 404 and errors(answer.text)


# -- pause, resume and replay ---------------------------------------------------------------


def test_an_admin_pauses_and_resumes_the_tenants_destination(
    api: TestClient, runtime: Runtime, made: dict[str, int]
) -> None:
    client = login(api, "admin@acme.example.com")
    html = page_of(client, "/ui/destinations/acme-billing")
    assert "Pause</button>" in html
    unsigned = client.post("/ui/destinations/acme-billing/pause", headers=HTML, data={})
    assert unsigned.status_code == 403  # no CSRF token
    paused = post(client, "/ui/destinations/acme-billing/pause")
    assert paused.status_code == 303
    assert paused.headers["location"] == "/ui/destinations/acme-billing?notice=destination_paused"
    html = page_of(client, paused.headers["location"])
    assert "Paused: its deliveries wait" in html and 'data-state="paused"' in html
    state = row(runtime.engine, destinations, destinations.c.name == "acme-billing")["state"]
    assert state == "paused"
    resumed = post(client, "/ui/destinations/acme-billing/resume")
    html = page_of(client, resumed.headers["location"])
    assert 'data-state="active"' in html and "Resumed" in html


def test_a_shared_destination_is_a_superadmins_to_change(
    api: TestClient, runtime: Runtime, made: dict[str, int]
) -> None:
    client = login(api, "admin@acme.example.com")
    html = page_of(client, "/ui/destinations/audit")
    assert "Pause</button>" not in html and "Resume" not in html
    refused = post(client, "/ui/destinations/audit/pause")
    assert refused.status_code == 403 and "shared destination" in errors(refused.text)[0]
    root = login(api, "root@example.com")
    assert "Resume (close the circuit)</button>" in page_of(root, "/ui/destinations/audit")
    assert post(root, "/ui/destinations/audit/resume").status_code == 303
    audit = row(runtime.engine, destinations, destinations.c.name == "audit")
    assert (audit["state"], audit["circuit"]) == ("active", "closed")


def test_an_admin_replays_one_delivery_and_a_destinations_dead_ones(
    api: TestClient, runtime: Runtime, made: dict[str, int]
) -> None:
    client = login(api, "admin@acme.example.com")
    html = page_of(client, f"/ui/deliveries/{made['ok']}")
    assert "Replay</button>" in html
    replayed = post(client, f"/ui/deliveries/{made['ok']}/replay")
    assert "sent again now" in page_of(client, replayed.headers["location"])
    again = row(runtime.engine, deliveries, deliveries.c.id == made["ok"])
    assert (again["status"], again["replay_count"]) == ("pending", 1)

    dead = page_of(client, "/ui/destinations/acme-billing?status=dead")
    assert "Replay every dead delivery of acme to acme-billing" in dead
    bulk = post(client, "/ui/destinations/acme-billing/replay", status="dead")
    assert bulk.headers["location"].endswith("notice=deliveries_replayed&n=1")
    assert row(runtime.engine, deliveries, deliveries.c.id == made["dead"])["status"] == "pending"
    globex = row(runtime.engine, deliveries, deliveries.c.id == made["globex"])
    assert globex["status"] == "dead"
    wrong = post(client, "/ui/destinations/acme-billing/replay", status="sending")
    assert wrong.status_code == 400


def test_an_admin_discards_a_paused_destinations_waiting_deliveries(
    api: TestClient, runtime: Runtime, made: dict[str, int]
) -> None:
    [event] = add(runtime, "acme")
    waiting = add_delivery(runtime.engine, "acme-billing", event, "acme", status="failed")
    client = login(api, "admin@acme.example.com")
    assert "Discard" not in page_of(client, "/ui/destinations/acme-billing")  # it is sending
    post(client, "/ui/destinations/acme-billing/pause")
    html = page_of(client, "/ui/destinations/acme-billing")
    assert "Discard the waiting deliveries of acme</button>" in html
    discarded = post(client, "/ui/destinations/acme-billing/discard")
    assert discarded.headers["location"].endswith("notice=deliveries_discarded&n=1")
    assert "were discarded (dead, replayable)" in page_of(client, discarded.headers["location"])
    assert row(runtime.engine, deliveries, deliveries.c.id == waiting)["status"] == "dead"


def test_a_viewer_cannot_change_anything(api: TestClient, made: dict[str, int]) -> None:
    client = login(api, "viewer@acme.example.com")
    for path in (
        "/ui/destinations/acme-billing/pause",
        "/ui/destinations/acme-billing/resume",
        "/ui/destinations/acme-billing/replay",
        "/ui/destinations/acme-billing/discard",
        f"/ui/deliveries/{made['dead']}/replay",
    ):
        answer = post(client, path)
        assert answer.status_code == 403 and "admin role" in errors(answer.text)[0], path


# -- odd input ------------------------------------------------------------------------------


@hypothesis_settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(["acme-billing", "audit", "globex-billing", "x" * 101, "a b", "%00"]),
    params=st.dictionaries(
        st.sampled_from(["status", "before_id", "x"]),
        st.text(max_size=20) | st.integers(-5, 2**64).map(str) | st.sampled_from(["dead"]),
        max_size=3,
    ),
)
def test_no_destination_page_query_is_a_server_error(
    api: TestClient, people: People, name: str, params: dict[str, str]
) -> None:
    if "hookyard_session" not in api.cookies:
        login(api, "viewer@acme.example.com")
    answer = api.get(f"/ui/destinations/{name}", params=params, headers=HTML)
    assert answer.status_code in (200, 400, 404), (name, params, answer.text[:300])


# -- in a browser ---------------------------------------------------------------------------


def test_an_admin_walks_from_the_menu_to_a_delivery_and_replays_it(
    page: Page, gateway: str, runtime: Runtime, made: dict[str, int]
) -> None:
    log_in(page, gateway, "admin@acme.example.com")
    page.click("nav >> text=Destinations")
    live(page)
    expect(page.locator('tr[data-destination="acme-billing"] [data-circuit]')).to_have_text(
        "circuit closed"
    )
    page.click("text=acme-billing")
    page.select_option("select[name=status]", "dead")
    expect(page.locator("#deliveries tr[data-delivery-id]")).to_have_count(1)
    page.click(f"#deliveries a >> text='{made['dead']}'")
    expect(page.locator("tr[data-attempt]")).to_have_count(2)
    page.click("button:text-is('Replay')")
    expect(page.locator("p.notice")).to_contain_text("sent again now")
    # the workers may be sending it already (nothing listens there): its replay is what stays
    expect(page.locator("main dl.facts")).to_contain_text("replayed 1 time")


def test_a_delivery_page_follows_a_replay_and_its_attempt_live(
    page: Page, gateway: str, runtime: Runtime, made: dict[str, int]
) -> None:
    log_in(page, gateway, "viewer@acme.example.com")
    page.goto(f"{gateway}/ui/deliveries/{made['dead']}")
    live(page)
    facts = page.locator("main dl.facts")
    expect(facts).not_to_contain_text("replayed")
    assert manage.replay(runtime.engine, [made["dead"]]) == 1  # an admin, elsewhere
    expect(facts).to_contain_text("replayed 1 time")
    # Sent again (nothing listens on port 9): its new attempt and status appear by themselves,
    # whichever worker sends it, the gateway's or this one.
    job = DeliveryJob(runtime.engine, runtime.sources.destinations)
    try:
        job.run_pass("test")
    finally:
        job.close()
    expect(page.locator("tr[data-attempt]")).to_have_count(3)
    expect(facts.locator(".badge").first).to_have_text("failed")


@pytest.mark.parametrize(
    "path", ["/ui/destinations", "/ui/destinations/billing", "/ui/deliveries/1"]
)
def test_a_stranger_is_sent_to_the_login(api: TestClient, path: str) -> None:
    answer = api.get(path, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/ui/login")


@pytest.mark.parametrize(
    "path",
    [
        "/ui/destinations/billing/replay",
        "/ui/destinations/billing/discard",
        "/ui/deliveries/1/replay",
    ],
)
def test_a_strangers_change_is_refused(api: TestClient, path: str) -> None:
    refused = api.post(path, follow_redirects=False)
    assert refused.status_code == 403
    assert "stale or not ours" in refused.json()["detail"]
