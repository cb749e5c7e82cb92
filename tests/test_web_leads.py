"""The dashboard's lead pages (`/ui/leads`): what each person sees of a tenant's leads (contact
data masked for viewers, as the API masks it), filters and paging, one lead's enrichment, and
asking for a lead to be enriched again. The leads are made by the C2S handler, as webhooks
would make them (`tests/domain_support.py`'s `leads_state`, and one more)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from hookyard.runtime import Runtime
from tests.domain_support import enriched, lead, leads_state
from tests.people import People
from tests.web_support import HTML, errors, login, page_of, post


@dataclass
class Leads:
    enriched: int  # acme's, enriched: a document and person data
    failed: int  # acme's, failed with an error quoting its contact
    invalid: int  # acme's, an e-mail that did not validate and no phone: nothing to look up
    globex: int


@pytest.fixture
def leads(runtime: Runtime, people: People) -> Leads:
    """`tests/test_api_domain.py`'s leads, the failed one's error quoting only its e-mail,
    and an invalid one for acme."""
    engine = runtime.engine
    done, failed, globex = leads_state(engine)
    enriched(engine, failed, enrichment_error="identity: no answer for maria.nova@example.com")
    invalid = lead(engine, "acme", "c2s-acme-3", name="Nobody Valid", email="not-an-address")
    return Leads(done, failed, invalid, globex)


def rows(html: str) -> dict[int, str]:
    """Lead id -> the text of its row on the list page."""
    found = re.findall(r'<tr data-lead-id="(\d+)">(.*?)</tr>', html, flags=re.S)
    return {int(i): re.sub(r"<[^>]+>|\s+", " ", row) for i, row in found}


# -- the list -------------------------------------------------------------------------------


def test_a_member_sees_the_tenants_leads_with_their_contact(api: TestClient, leads: Leads) -> None:
    html = page_of(login(api, "member@acme.example.com"), "/ui/leads")
    shown = rows(html)
    assert list(shown) == [leads.invalid, leads.failed, leads.enriched]  # newest first
    row = shown[leads.enriched]
    for text in ("c2s-acme-1", "Maria Test", "maria.test@example.com", "+5511987654321", "done"):
        assert text in row
    assert "failed" in shown[leads.failed] and "not_needed" in shown[leads.invalid]
    assert f'href="/ui/leads/{leads.enriched}"' in html
    assert "c2s-globex-1" not in html and "John Smith" not in html
    assert 'data-live="lead"' in html


def test_a_viewer_sees_email_and_phone_masked(api: TestClient, leads: Leads) -> None:
    html = page_of(login(api, "viewer@acme.example.com"), "/ui/leads")
    row = rows(html)[leads.enriched]
    assert "m***@example.com" in row and "***4321" in row and "M*** T***" in row
    assert "masked for viewers" in html
    for secret in ("maria.test@", "987654321", "maria.nova@", "Maria Test"):
        assert secret not in html


def test_a_superadmin_sees_every_tenant_with_its_name(api: TestClient, leads: Leads) -> None:
    shown = rows(page_of(login(api, "root@example.com"), "/ui/leads"))
    assert set(shown) == {leads.enriched, leads.failed, leads.invalid, leads.globex}
    assert "globex" in shown[leads.globex] and "john@globex.example.com" in shown[leads.globex]


def test_filters_and_paging(api: TestClient, runtime: Runtime, leads: Leads) -> None:
    login(api, "member@acme.example.com")
    assert list(rows(page_of(api, "/ui/leads?enrichment_status=failed"))) == [leads.failed]
    assert list(rows(page_of(api, "/ui/leads?status=open&enrichment_status=done"))) == [
        leads.enriched
    ]
    assert rows(page_of(api, "/ui/leads?status=closed")) == {}
    assert "No leads match." in page_of(api, "/ui/leads?status=closed")
    assert list(rows(page_of(api, f"/ui/leads?before_id={leads.failed}"))) == [leads.enriched]

    # A full page links to the next one, which goes on from its last lead.
    for n in range(50):
        lead(runtime.engine, "acme", f"c2s-more-{n}", name=f"More {n}", email=f"m{n}@example.com")
    first = page_of(api, "/ui/leads")
    assert len(rows(first)) == 50
    [older] = re.findall(r'<p class="pager"><a href="\?([^"]+)">Older', first)
    second = rows(page_of(api, "/ui/leads?" + older.replace("&amp;", "&")))
    assert set(second) == {leads.invalid, leads.failed, leads.enriched}


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("status=maybe", 400),
        ("enrichment_status=DONE", 400),
        ("before_id=0", 400),
        (f"before_id={2**63}", 400),
        ("before_id=abc", 400),
    ],
)
def test_bad_filters_are_400(api: TestClient, leads: Leads, query: str, status: int) -> None:
    html = page_of(login(api, "viewer@acme.example.com"), f"/ui/leads?{query}", status)
    assert errors(html)


# -- one lead -------------------------------------------------------------------------------


def test_a_member_sees_the_lead_and_its_enrichment(api: TestClient, leads: Leads) -> None:
    html = page_of(login(api, "member@acme.example.com"), f"/ui/leads/{leads.enriched}")
    for text in (
        "c2s-acme-1",
        "maria.test@example.com",
        "+5511987654321",
        "12345678909",  # the document
        "&#34;monthly_income&#34;: 8500",  # the person data, as JSON
        "&#34;birth_date&#34;: &#34;1990-04-01&#34;",
        "<td>identity</td><td>12.5</td>",  # the step timings
        "<td>person</td><td>30.1</td>",
        "2025-12-01 12:00:00",  # finished
        f'data-live="lead:{leads.enriched}"',
        "Enrich again",
    ):
        assert text in html, text
    assert '<span id="enrichment-status" class="badge good">done</span>' in html

    failed = page_of(api, f"/ui/leads/{leads.failed}")
    assert "identity: no answer for maria.nova@example.com" in failed
    assert "<dt>Attempts</dt><dd>5</dd>" in failed


def test_a_viewer_sees_the_lead_masked_and_no_button(api: TestClient, leads: Leads) -> None:
    login(api, "viewer@acme.example.com")
    html = page_of(api, f"/ui/leads/{leads.enriched}")
    for text in ("m***@example.com", "***4321", "***09", "&#34;birth_date&#34;: &#34;***01&#34;"):
        assert text in html, text
    for secret in ("maria.test@", "987654321", "12345678909", "1990", "Maria Test"):
        assert secret not in html
    assert "Enrich again" not in html
    failed = page_of(api, f"/ui/leads/{leads.failed}")
    assert "identity: no answer for m***@example.com" in failed


def test_validation_errors_are_shown(api: TestClient, leads: Leads) -> None:
    html = page_of(login(api, "member@acme.example.com"), f"/ui/leads/{leads.invalid}")
    [table] = re.findall(r'<table class="grid" id="validation-errors">(.*?)</table>', html, re.S)
    assert "<td>email</td>" in table
    assert "not_needed" in html


def test_another_tenants_lead_and_bad_ids(api: TestClient, leads: Leads) -> None:
    login(api, "admin@acme.example.com")
    assert errors(page_of(api, f"/ui/leads/{leads.globex}", 404)) == [f"no lead {leads.globex}"]
    assert errors(page_of(api, "/ui/leads/999999", 404)) == ["no lead 999999"]
    for bad in ("0", str(2**63)):
        assert errors(page_of(api, f"/ui/leads/{bad}", 400))
    page_of(api, "/ui/leads/abc", 404)
    assert post(api, f"/ui/leads/{leads.globex}/re-enrich").status_code == 404
    assert post(api, "/ui/leads/0/re-enrich").status_code == 400


# -- enriching again ------------------------------------------------------------------------


def test_a_member_asks_for_enrichment_again(api: TestClient, people: People, leads: Leads) -> None:
    login(api, "member@acme.example.com")
    answer = post(api, f"/ui/leads/{leads.enriched}/re-enrich")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/ui/leads/{leads.enriched}?notice=re_enrich"
    shown = api.get(
        f"/api/v1/leads/{leads.enriched}", headers=people.headers("acme", "member")
    ).json()
    assert shown["enrichment"]["status"] == "pending"
    html = page_of(api, answer.headers["location"])
    assert "Enrichment requested." in html
    assert '<span id="enrichment-status" class="badge wait">pending</span>' in html


def test_the_apis_refusal_is_shown_with_its_reason(
    api: TestClient, runtime: Runtime, leads: Leads
) -> None:
    login(api, "member@acme.example.com")
    nothing = post(api, f"/ui/leads/{leads.invalid}/re-enrich")
    assert nothing.status_code == 409
    assert errors(nothing.text) == ["the lead has no valid e-mail or phone to look up"]

    enriched(runtime.engine, leads.failed, enrichment_status="running")
    assert "Enrich again" not in page_of(api, f"/ui/leads/{leads.failed}")
    running = post(api, f"/ui/leads/{leads.failed}/re-enrich")
    assert running.status_code == 409
    assert errors(running.text) == ["an enrichment run holds this lead now; ask again when it ends"]


def test_a_viewer_cannot_and_a_form_without_csrf_is_refused(
    api: TestClient, people: People, leads: Leads
) -> None:
    login(api, "viewer@acme.example.com")
    refused = post(api, f"/ui/leads/{leads.enriched}/re-enrich")
    assert refused.status_code == 403 and errors(refused.text) == ["this needs the member role"]

    login(api, "member@acme.example.com")
    stale = api.post(
        f"/ui/leads/{leads.enriched}/re-enrich", data={}, headers=HTML, follow_redirects=False
    )
    assert stale.status_code == 403
    shown = api.get(
        f"/api/v1/leads/{leads.enriched}", headers=people.headers("acme", "member")
    ).json()
    assert shown["enrichment"]["status"] == "done"  # neither changed it
