"""The dashboard's sync conflicts page (`/ui/conflicts`): each tenant's conflicts by state,
with their customer, both values and HubSpot's event, and an admin deciding one (keep ours,
take theirs) through the API's own route. The conflicts are made as in production: a
customer linked to HubSpot, and HubSpot's signed webhook changing a field we own, handled
by a worker (`tests/customers_support.py`; the `acme` and `globex` fixtures of conftest.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from hookyard.domain.crm.tables import sync_conflicts
from hookyard.runtime import Runtime
from tests.customers_support import Books
from tests.people import People
from tests.web_support import HTML, errors, login, page_of, post


def rows(html: str) -> dict[int, str]:
    """Conflict id -> the text of its row."""
    found = re.findall(r'<tr data-conflict-id="(\d+)">(.*?)</tr>', html, flags=re.S)
    return {int(i): re.sub(r"\s+", " ", row) for i, row in found}


def conflict(api: TestClient, people: People, conflict_id: int) -> dict[str, Any]:
    answer = api.get(
        f"/api/v1/sync-conflicts/{conflict_id}", headers=people.headers("acme", "admin")
    )
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def resolve(api: TestClient, conflict_id: int, resolution: str, **form: Any) -> Any:
    return post(api, f"/ui/conflicts/{conflict_id}/resolve", resolution=resolution, **form)


# -- the list -------------------------------------------------------------------------------


def test_an_admin_sees_the_tenants_open_conflicts_with_both_values(
    api: TestClient, people: People, acme: Books, globex: Books
) -> None:
    event_id = conflict(api, people, acme.conflict)["event_id"]
    html = page_of(login(api, "admin@acme.example.com"), "/ui/conflicts")
    shown = rows(html)
    assert list(shown) == [acme.conflict]  # not globex's
    row = shown[acme.conflict]
    for text in (
        f'Acme Telecom <span class="mono">#{acme.customer["id"]}</span>',
        '<td class="mono">company_name</td>',
        '<td class="mono">Acme Telecom</td>',  # ours
        '<td class="mono">Acme Telecom Inc</td>',  # HubSpot's
        f'<a href="/ui/events/{event_id}">{event_id}</a>',
        '<span class="badge wait">open</span>',
        '<button type="submit" name="resolution" value="keep_ours">Keep ours</button>',
        'name="resolution" value="take_theirs"',
        f'action="/ui/conflicts/{acme.conflict}/resolve?next=/ui/conflicts"',  # back here
    ):
        assert text in row, text
    assert "1 conflict open." in html and "Globex" not in html
    assert 'data-live="crm_customer"' in html


@pytest.mark.parametrize("role", ["viewer", "member"])
def test_a_viewer_or_member_sees_conflicts_but_cannot_resolve(
    api: TestClient, people: People, acme: Books, role: str
) -> None:
    login(api, f"{role}@acme.example.com")
    html = page_of(api, "/ui/conflicts")
    assert "Acme Telecom Inc" in rows(html)[acme.conflict]
    assert (
        "Keep ours" not in html and "Take theirs" not in html and '<form class="inline"' not in html
    )
    refused = resolve(api, acme.conflict, "keep_ours")
    assert refused.status_code == 403
    assert errors(refused.text) == ["this needs the admin role"]
    assert conflict(api, people, acme.conflict)["resolution"] is None


def test_a_superadmin_sees_every_tenants_conflicts(
    api: TestClient, acme: Books, globex: Books
) -> None:
    shown = rows(page_of(login(api, "root@example.com"), "/ui/conflicts"))
    assert list(shown) == [globex.conflict, acme.conflict]
    assert (
        "<td>globex</td>" in shown[globex.conflict] and "Globex Networks" in shown[globex.conflict]
    )


# -- deciding -------------------------------------------------------------------------------


def test_an_admin_keeps_ours_and_the_page_shows_it_resolved(
    api: TestClient, people: People, acme: Books
) -> None:
    login(api, "admin@acme.example.com")
    answer = resolve(api, acme.conflict, "keep_ours")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/conflicts?notice=resolved"
    decided = conflict(api, people, acme.conflict)
    assert decided["resolution"] == "keep_ours" and decided["resolved_by"].startswith("user:")

    back = page_of(api, answer.headers["location"])
    assert "Conflict resolved." in back and rows(back) == {} and "No open conflicts." in back
    row = rows(page_of(api, "/ui/conflicts?state=resolved"))[acme.conflict]
    assert '<span class="badge good">keep_ours</span>' in row
    assert f"by {decided['resolved_by']}" in row and "Keep ours" not in row


def test_an_admin_takes_theirs_and_goes_back_to_the_page_it_came_from(
    api: TestClient, people: People, acme: Books
) -> None:
    login(api, "admin@acme.example.com")
    answer = post(
        api,
        f"/ui/conflicts/{acme.conflict}/resolve?next=/ui/conflicts%3Fstate%3Dall",
        resolution="take_theirs",
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/conflicts?state=all&notice=resolved"
    assert conflict(api, people, acme.conflict)["resolution"] == "take_theirs"
    customer = api.get(
        f"/api/v1/customers/{acme.customer['id']}", headers=people.headers("acme", "admin")
    ).json()
    assert customer["company_name"] == "Acme Telecom Inc"  # HubSpot's value, now ours
    html = page_of(api, answer.headers["location"])
    assert "take_theirs" in rows(html)[acme.conflict]
    assert 'action="/ui/conflicts/' not in html  # no open conflict: nothing to decide


def test_resolving_twice_shows_the_apis_reason(
    api: TestClient, people: People, acme: Books
) -> None:
    login(api, "admin@acme.example.com")
    assert resolve(api, acme.conflict, "keep_ours").status_code == 303
    again = resolve(api, acme.conflict, "take_theirs")
    assert again.status_code == 409
    assert errors(again.text) == [f"conflict {acme.conflict} is already resolved"]
    assert conflict(api, people, acme.conflict)["resolution"] == "keep_ours"  # the first stands


def test_a_bad_decision_another_tenants_conflict_and_bad_ids_are_refused(
    api: TestClient, people: People, acme: Books, globex: Books
) -> None:
    login(api, "admin@acme.example.com")
    for bad in ("superseded", "", "KEEP_OURS"):
        refused = resolve(api, acme.conflict, bad)
        assert refused.status_code == 400, bad
        assert errors(refused.text)
    missing = post(api, f"/ui/conflicts/{acme.conflict}/resolve")  # no resolution at all
    assert missing.status_code == 400
    assert conflict(api, people, acme.conflict)["resolution"] is None

    other = resolve(api, globex.conflict, "keep_ours")
    assert other.status_code == 404
    assert errors(other.text) == [f"no conflict {globex.conflict}"]
    assert resolve(api, 999999, "keep_ours").status_code == 404
    for bad_id in ("0", str(2**63)):
        assert resolve(api, int(bad_id), "keep_ours").status_code == 400
    assert post(api, "/ui/conflicts/abc/resolve", resolution="keep_ours").status_code == 404


def test_a_form_without_its_csrf_token_is_refused(
    api: TestClient, people: People, acme: Books
) -> None:
    login(api, "admin@acme.example.com")
    for form in ({"resolution": "keep_ours"}, {"resolution": "nonsense"}):
        stale = api.post(
            f"/ui/conflicts/{acme.conflict}/resolve",
            data=form,
            headers=HTML,
            follow_redirects=False,
        )
        assert stale.status_code == 403
    wrong = resolve(api, acme.conflict, "keep_ours", csrf="not-the-token")
    assert wrong.status_code == 403
    assert conflict(api, people, acme.conflict)["resolution"] is None


# -- filters and paging ---------------------------------------------------------------------


def test_the_state_filter_and_offset_paging(api: TestClient, runtime: Runtime, acme: Books) -> None:
    # The history of a field HubSpot changed often: conflicts hookyard closed as superseded.
    start = datetime(2025, 11, 1, tzinfo=UTC)
    with runtime.engine.begin() as tx:
        tx.execute(
            insert(sync_conflicts),
            [
                {
                    "tenant": "acme",
                    "customer_id": acme.customer["id"],
                    "field": "customer_type",
                    "our_value": "business",
                    "their_value": f"kind-{n}",
                    "event_id": 800_000 + n,
                    "created_at": start + timedelta(minutes=n),
                    "resolved_at": start + timedelta(minutes=n + 1),
                    "resolved_by": "hookyard",
                    "resolution": "superseded",
                }
                for n in range(55)
            ],
        )
    login(api, "viewer@acme.example.com")
    assert list(rows(page_of(api, "/ui/conflicts"))) == [acme.conflict]
    assert list(rows(page_of(api, "/ui/conflicts?state=open"))) == [acme.conflict]

    first = page_of(api, "/ui/conflicts?state=resolved")
    assert "55 conflicts resolved." in first and len(rows(first)) == 50
    assert "kind-54" in first and "kind-4<" not in first  # newest first
    assert '<a href="?state=resolved&amp;offset=50">Older →</a>' in first
    assert "Newer" not in first
    second = page_of(api, "/ui/conflicts?state=resolved&offset=50")
    assert len(rows(second)) == 5 and "kind-0<" in second and "kind-54" not in second
    assert '<a href="?state=resolved">← Newer</a>' in second and "Older" not in second

    assert len(rows(page_of(api, "/ui/conflicts?state=all&offset=50"))) == 6
    for query in ("state=closed", "state=OPEN", "offset=-1", "offset=1000001", "offset=x"):
        assert errors(page_of(api, f"/ui/conflicts?{query}", 400)), query
