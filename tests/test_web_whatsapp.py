"""The dashboard's WhatsApp pages (`/ui/whatsapp`): the quality summary, the templates needing
attention with their open alerts (the one alert system's, acknowledged through the alerts
page's route by members and up), every template with filters and paging, one template's
history and campaigns, creating a campaign (members), pausing and resuming it, resuming the
campaigns of a reinstated template at once and deleting one (admins), the live sections,
and that no tenant sees or changes another's. The rows are made by the Meta handler, as
webhooks would make them, and the alert rules' evaluation (`tests/domain_support.py`'s
`whatsapp_state`)."""

from __future__ import annotations

import html as markup
import re
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hookyard.api.params import MAX_ID
from hookyard.runtime import Runtime
from hookyard.web import whatsapp
from tests.domain_support import HOUR, T0, meta, template_id, whatsapp_state
from tests.people import People
from tests.web_support import HTML, errors, login, page_of, post, section, text

V1 = "/api/v1"


@dataclass
class Templates:
    order_update: int  # acme's, quality went RED: an open alert
    promo: int  # acme's, PAUSED ("low quality"): its campaign paused
    welcome: int  # acme's, APPROVED and GREEN: fine
    notice: int  # globex's, DISABLED: an open alert, its campaign paused
    spring_sale: int  # acme's campaign of promo
    globex_launch: int  # globex's campaign of notice


@pytest.fixture
def world(runtime: Runtime, people: People) -> Templates:
    """`tests/test_api_domain.py`'s WhatsApp rows."""
    engine = runtime.engine
    spring_sale, globex_launch = whatsapp_state(engine, runtime.settings)
    return Templates(
        *(template_id(engine, m) for m in ("5001", "5002", "5003", "6001")),
        spring_sale,
        globex_launch,
    )


def rows(html: str, attribute: str) -> dict[int, str]:
    """The id in each row's `data-…` attribute -> the row's text, in page order."""
    found = re.findall(rf'<tr {attribute}="(\d+)">(.*?)</tr>', html, flags=re.S)
    return {int(key): text(row) for key, row in found}


def cards(html: str) -> dict[str, int]:
    """The summary's tiles: `total`, `quality …` and `status …` -> the count."""
    found = re.findall(
        r'<div class="card" data-(count|quality|status)="([^"]+)"><div class="n">(\d+)</div>',
        section(html, "summary"),
    )
    return {(value if kind == "count" else f"{kind} {value}"): int(n) for kind, value, n in found}


def buttons(fragment: str) -> list[str]:
    return re.findall(r"<button[^>]*>([^<]+)</button>", fragment)


def rest(api: TestClient, people: People, path: str, role: str = "viewer") -> Any:
    """What the management API says now (acme's person of that role asking)."""
    answer = api.get(V1 + path, headers=people.headers("acme", role))
    assert answer.status_code == 200, answer.text
    return answer.json()


def open_alert(api: TestClient, people: People, tenant: str = "acme") -> int:
    """The id of the tenant's one open alert (its template's)."""
    answer = api.get(f"{V1}/alerts", headers=people.headers(tenant, "viewer"))
    [alert] = answer.json()["items"]
    return int(alert["id"])


# -- the overview ---------------------------------------------------------------------------


def test_a_viewer_sees_the_summary_the_critical_templates_and_the_campaigns(
    api: TestClient, world: Templates
) -> None:
    html = page_of(login(api, "viewer@acme.example.com"), "/ui/whatsapp")
    assert cards(html) == {
        "total": 3,
        "quality GREEN": 1,
        "quality RED": 1,
        "quality none": 1,
        "status APPROVED": 2,
        "status PAUSED": 1,
    }

    critical = rows(section(html, "critical"), "data-template-id")
    assert list(critical) == [world.promo, world.order_update]  # newest first
    assert critical[world.order_update].startswith("order_update 5001 APPROVED RED quality RED")
    assert "red_quality" in critical[world.order_update]
    assert critical[world.promo].startswith("promo 5002 PAUSED — status PAUSED low quality none")

    templates = rows(section(html, "templates"), "data-template-id")
    assert list(templates) == [world.welcome, world.promo, world.order_update]
    assert templates[world.welcome].startswith("welcome 5003 111")
    assert "APPROVED GREEN" in templates[world.welcome]
    assert f'href="/ui/whatsapp/templates/{world.promo}"' in html

    [spring] = rows(section(html, "campaigns"), "data-campaign-id").values()
    assert spring.startswith("Spring sale promo paused TEMPLATE_PAUSED")

    # A viewer may look, not act.
    assert "Acknowledge" not in html and "Resume" not in html
    shown = text("".join(section(html, n) for n in ("critical", "templates", "campaigns")))
    for other in ("notice", "Globex launch", "6001", "222"):
        assert other not in shown


def test_a_member_may_acknowledge_only_an_admin_may_resume(
    api: TestClient, people: People, world: Templates
) -> None:
    html = page_of(login(api, "member@acme.example.com"), "/ui/whatsapp")
    critical = section(html, "critical")
    assert buttons(critical) == ["Acknowledge"]  # only order_update has an open alert
    # Through the alerts page's own route, coming back here.
    alert = open_alert(api, people)
    assert f'action="/ui/alerts/{alert}/acknowledge?next=/ui/whatsapp"' in critical
    assert buttons(section(html, "campaigns")) == []

    html = page_of(login(api, "admin@acme.example.com"), "/ui/whatsapp")
    assert buttons(section(html, "critical")) == ["Acknowledge"]
    campaigns = section(html, "campaigns")
    assert buttons(campaigns) == ["Resume"]
    assert f'action="/ui/whatsapp/campaigns/{world.spring_sale}/resume?next=' in campaigns


def test_every_section_refreshes_live_on_its_first_page_only(
    api: TestClient, world: Templates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(whatsapp, "PAGE", 1)
    html = page_of(login(api, "viewer@acme.example.com"), "/ui/whatsapp")
    for name, kind in [
        ("summary", "whatsapp_template whatsapp_campaign"),
        ("critical", "whatsapp_template whatsapp_campaign"),
        ("templates", "whatsapp_template"),
        ("campaigns", "whatsapp_campaign"),
    ]:
        assert f'data-live="{kind}"' in section(html, name)
        assert f'hx-select="#{name}"' in section(html, name)

    # One template a page: the older templates' page does not refresh that list.
    assert list(rows(section(html, "templates"), "data-template-id")) == [world.welcome]
    older = re.search(r'href="(\?before_id=\d+)"', html)
    assert older, "no link to the older templates"
    second = page_of(api, "/ui/whatsapp" + markup.unescape(older.group(1)))
    assert list(rows(section(second, "templates"), "data-template-id")) == [world.promo]
    assert "data-live" not in section(second, "templates")
    assert 'data-live="whatsapp_template whatsapp_campaign"' in section(second, "critical")


def test_the_templates_filter_on_status_and_quality(api: TestClient, world: Templates) -> None:
    login(api, "viewer@acme.example.com")
    red = page_of(api, "/ui/whatsapp?quality=RED")
    assert list(rows(section(red, "templates"), "data-template-id")) == [world.order_update]
    assert "<option selected>RED</option>" in red
    paused = page_of(api, "/ui/whatsapp?status=PAUSED&quality=")
    assert list(rows(section(paused, "templates"), "data-template-id")) == [world.promo]
    none = page_of(api, "/ui/whatsapp?status=DISABLED")  # globex's is not acme's
    assert "No templates match." in section(none, "templates")
    # The filter is the list's only: the critical ones stay.
    assert len(rows(section(none, "critical"), "data-template-id")) == 2


def test_a_bad_filter_or_cursor_is_a_400_page(api: TestClient, people: People) -> None:
    login(api, "viewer@acme.example.com")
    for query in ("status=NOPE", "quality=purple", "before_id=0", "critical_before=x"):
        assert errors(page_of(api, f"/ui/whatsapp?{query}", 400)), query


def test_a_superadmin_sees_every_tenant_with_its_name(api: TestClient, world: Templates) -> None:
    html = page_of(login(api, "root@example.com"), "/ui/whatsapp")
    assert cards(html)["total"] == 4
    critical = rows(section(html, "critical"), "data-template-id")
    assert critical[world.notice].startswith("notice 6001 globex DISABLED")
    campaigns = rows(section(html, "campaigns"), "data-campaign-id")
    assert campaigns[world.globex_launch].startswith("Globex launch globex notice paused")
    assert buttons(section(html, "campaigns")) == ["Resume", "Resume"]


# -- acknowledging ---------------------------------------------------------------------------


def test_a_member_acknowledges_a_templates_alert(
    api: TestClient, people: People, world: Templates
) -> None:
    login(api, "member@acme.example.com")
    alert = open_alert(api, people)
    path = f"/ui/alerts/{alert}/acknowledge"
    done = post(api, f"{path}?next=/ui/whatsapp%3Fquality%3DRED")
    assert done.status_code == 303
    assert done.headers["location"] == "/ui/whatsapp?quality=RED&notice=acknowledged"

    assert rest(api, people, "/alerts")["items"] == []
    [acked] = rest(api, people, "/alerts?state=acknowledged")["items"]
    assert acked["acknowledged_by"] == rest(api, people, "/me", "member")["subject"]
    assert rest(api, people, "/whatsapp/alerts")["items"] == []  # the deprecated alias agrees

    html = page_of(api, done.headers["location"])
    assert "Acknowledged." in html
    assert buttons(section(html, "critical")) == []  # nothing open any more
    assert "red_quality" not in section(html, "critical")

    # Again: the first acknowledgement is kept.
    assert post(api, path).status_code == 303
    [kept] = rest(api, people, "/alerts?state=acknowledged")["items"]
    assert kept["acknowledged_at"] == acked["acknowledged_at"]


def test_a_viewer_cannot_acknowledge(api: TestClient, people: People, world: Templates) -> None:
    login(api, "viewer@acme.example.com")
    refused = post(api, f"/ui/alerts/{open_alert(api, people)}/acknowledge")
    assert refused.status_code == 403
    assert "member" in " ".join(errors(refused.text))
    [still_open] = rest(api, people, "/whatsapp/alerts")["items"]
    assert still_open["acknowledged_at"] is None


def test_a_change_without_the_forms_token_is_refused(
    api: TestClient, people: People, world: Templates
) -> None:
    login(api, "admin@acme.example.com")
    for form in ({}, {"csrf": "not-the-token"}):
        for path in (
            f"/ui/alerts/{open_alert(api, people)}/acknowledge",
            f"/ui/whatsapp/campaigns/{world.spring_sale}/resume",
        ):
            refused = api.post(path, data=form, headers=HTML, follow_redirects=False)
            assert refused.status_code == 403, (form, path)
            assert "reload the page" in " ".join(errors(refused.text))
    assert len(rest(api, people, "/whatsapp/alerts")["items"]) == 1
    assert rest(api, people, f"/whatsapp/campaigns/{world.spring_sale}")["status"] == "paused"


def test_another_tenants_template_or_campaign_cannot_be_changed(
    api: TestClient, people: People, world: Templates
) -> None:
    login(api, "admin@acme.example.com")
    globex_alert = open_alert(api, people, "globex")
    assert post(api, f"/ui/alerts/{globex_alert}/acknowledge").status_code == 404
    assert post(api, f"/ui/whatsapp/campaigns/{world.globex_launch}/resume").status_code == 404
    globex = people.headers("globex", "viewer")
    assert len(api.get(f"{V1}/whatsapp/alerts", headers=globex).json()["items"]) == 1
    found = api.get(f"{V1}/whatsapp/campaigns/{world.globex_launch}", headers=globex).json()
    assert found["status"] == "paused"


# -- resuming --------------------------------------------------------------------------------


def reinstate_promo(runtime: Runtime) -> None:
    """Meta reinstated acme's promo (APPROVED again): its paused campaign may be resumed."""
    meta(runtime.engine, "acme", "111", "5002", T0 + 2 * HOUR, event="REINSTATED")


def test_an_admin_resumes_a_paused_campaign(
    api: TestClient, runtime: Runtime, people: People, world: Templates
) -> None:
    path = f"/ui/whatsapp/campaigns/{world.spring_sale}/resume"
    for role in ("viewer", "member"):
        refused = post(login(api, f"{role}@acme.example.com"), path)
        assert refused.status_code == 403 and "admin" in " ".join(errors(refused.text))
    assert rest(api, people, f"/whatsapp/campaigns/{world.spring_sale}")["status"] == "paused"

    # Not while its template is PAUSED: the API's 409, as a page, with the reason.
    login(api, "admin@acme.example.com")
    blocked = post(api, path)
    assert blocked.status_code == 409
    assert "template promo is PAUSED" in " ".join(errors(blocked.text))
    assert rest(api, people, f"/whatsapp/campaigns/{world.spring_sale}")["status"] == "paused"

    reinstate_promo(runtime)
    done = post(api, f"{path}?next=/ui/whatsapp")
    assert done.status_code == 303
    assert done.headers["location"] == "/ui/whatsapp?notice=resumed"
    resumed = rest(api, people, f"/whatsapp/campaigns/{world.spring_sale}")
    assert resumed["status"] == "active" and resumed["paused_reason"] is None
    assert resumed["log"][0]["actor"] == rest(api, people, "/me", "admin")["subject"]

    html = page_of(api, done.headers["location"])
    assert "Campaign resumed." in html
    [row] = rows(section(html, "campaigns"), "data-campaign-id").values()
    assert row.startswith("Spring sale promo active —")
    assert buttons(section(html, "campaigns")) == []

    # Resuming an active campaign is the API's 409, as a page.
    again = post(api, path)
    assert again.status_code == 409 and "not paused" in " ".join(errors(again.text))


def test_a_campaign_page_shows_what_happened_to_it(
    api: TestClient, runtime: Runtime, world: Templates
) -> None:
    path = f"/ui/whatsapp/campaigns/{world.spring_sale}"
    html = page_of(login(api, "viewer@acme.example.com"), path)
    campaign = section(html, "campaign")
    assert f'data-live="whatsapp_campaign:{world.spring_sale}"' in campaign
    facts = text(campaign)
    assert "Status paused" in facts and "Paused because TEMPLATE_PAUSED" in facts
    assert "Template promo 5002" in facts
    [entry] = rows(campaign, "data-log-id").values()
    assert "paused — template promo is PAUSED (low quality)" in entry
    assert buttons(campaign) == []

    html = page_of(login(api, "admin@acme.example.com"), path)
    campaign = section(html, "campaign")  # no Resume while its template is PAUSED (a 409)
    assert buttons(campaign) == ["Delete"]
    assert "Its template is PAUSED at Meta: the campaign can be resumed once" in text(campaign)
    reinstate_promo(runtime)  # resumable once its template is APPROVED again
    campaign = section(page_of(api, path), "campaign")
    assert buttons(campaign) == ["Resume", "Delete"] and "data-resume-blocked" not in campaign
    done = post(api, f"{path}/resume?next={path}")
    assert done.headers["location"] == f"{path}?notice=resumed"
    campaign = section(page_of(api, done.headers["location"]), "campaign")
    assert "Status active" in text(campaign) and buttons(campaign) == ["Pause", "Delete"]
    actions = [entry.split()[2] for entry in rows(campaign, "data-log-id").values()]
    assert actions == ["resumed", "template_reinstated", "paused"]  # newest first, after the time


# -- a template -----------------------------------------------------------------------------


def test_a_template_shows_its_facts_and_history(api: TestClient, world: Templates) -> None:
    html = page_of(
        login(api, "viewer@acme.example.com"), f"/ui/whatsapp/templates/{world.order_update}"
    )
    template = section(html, "template")
    assert f'data-live="whatsapp_template:{world.order_update}"' in template
    facts = text(template)
    for fact in (
        "Status APPROVED",
        "Quality RED",
        "Name order_update",
        "Tenant acme",
        "Meta template id 5001",
        "WABA 111",
        "Quality changed 2025-12-01 13:00:00",
    ):
        assert fact in facts
    # Each row without the time it was recorded (now) and its webhook's id.
    history = [" ".join(h.split()[2:-1]) for h in rows(template, "data-history-id").values()]
    assert history == [
        "quality RED GREEN → RED — applied 2025-12-01 13:00:00",
        "status APPROVED — → APPROVED — applied 2025-12-01 12:00:00",
    ]


def test_another_tenants_or_no_template_is_a_404_page(api: TestClient, world: Templates) -> None:
    login(api, "viewer@acme.example.com")
    for path in (
        f"/ui/whatsapp/templates/{world.notice}",
        "/ui/whatsapp/templates/999999",
        f"/ui/whatsapp/campaigns/{world.globex_launch}",
        "/ui/whatsapp/campaigns/999999",
        "/ui/whatsapp/templates/abc",
        "/ui/whatsapp/templates/-1",
    ):
        html = page_of(api, path, 404)
        assert "policy" not in html and "Globex launch" not in html


def test_a_bad_template_id_or_cursor_is_a_400_page(api: TestClient, world: Templates) -> None:
    login(api, "viewer@acme.example.com")
    for bad in ("0", str(MAX_ID + 1), f"{world.promo}?before_id=0"):
        assert errors(page_of(api, f"/ui/whatsapp/templates/{bad}", 400)), bad


def test_a_bad_id_in_a_change_is_a_400_not_a_500(api: TestClient, world: Templates) -> None:
    login(api, "admin@acme.example.com")
    assert post(api, f"/ui/whatsapp/campaigns/{MAX_ID + 1}/resume").status_code == 400
    assert post(api, f"/ui/whatsapp/campaigns/{MAX_ID}/resume").status_code == 404


# -- campaigns: creating, pausing, resuming, deleting ----------------------------------------


def campaign_rows(html: str) -> dict[int, str]:
    return rows(section(html, "campaigns"), "data-campaign-id")


def test_the_critical_templates_say_what_to_do_and_which_campaigns_they_stop(
    api: TestClient, world: Templates
) -> None:
    html = page_of(login(api, "viewer@acme.example.com"), "/ui/whatsapp")
    critical = rows(section(html, "critical"), "data-template-id")
    assert "Template paused by Meta for low quality" in critical[world.promo]
    assert critical[world.promo].endswith(str(world.spring_sale))
    assert "Quality is RED" in critical[world.order_update]
    assert critical[world.order_update].endswith("none")
    assert 'data-paused="TEMPLATE_PAUSED"><div class="n">1</div>' in section(html, "summary")
    assert 'id="new-campaign"' not in html  # a viewer creates nothing


def test_a_member_creates_a_campaign_from_the_page(
    api: TestClient, people: People, world: Templates
) -> None:
    html = page_of(login(api, "member@acme.example.com"), "/ui/whatsapp")
    form = re.search(r'<form id="new-campaign".*?</form>', html, flags=re.S)
    assert form, "no new campaign form"
    offered = re.findall(r'<option value="(\d+)"', form.group(0))
    assert sorted(map(int, offered)) == sorted([world.order_update, world.promo, world.welcome])

    done = post(api, "/ui/whatsapp/campaigns", name="Welcome wave", template_id=str(world.welcome))
    assert done.status_code == 303
    assert done.headers["location"] == "/ui/whatsapp?notice=campaign_created"
    html = page_of(api, done.headers["location"])
    assert "Campaign created." in html
    made = {row.split(" welcome ")[0]: key for key, row in campaign_rows(html).items()}
    assert campaign_rows(html)[made["Welcome wave"]].startswith("Welcome wave welcome active")

    # On a template Meta paused, it starts paused for it.
    post(api, "/ui/whatsapp/campaigns", name="Promo two", template_id=str(world.promo))
    [promo_two] = [r for r in campaign_rows(page_of(api, "/ui/whatsapp")).values() if "two" in r]
    assert promo_two.startswith("Promo two promo paused TEMPLATE_PAUSED")
    listed = rest(api, people, "/whatsapp/campaigns")["items"]
    assert {c["name"] for c in listed} == {"Spring sale", "Welcome wave", "Promo two"}


def test_a_refused_campaign_comes_back_with_the_reason(
    api: TestClient, people: People, world: Templates
) -> None:
    login(api, "member@acme.example.com")
    for form, field, reason in [
        ({"name": "", "template_id": str(world.welcome)}, "name", "at least 1 character"),
        ({"name": "   ", "template_id": str(world.welcome)}, "name", "match pattern"),
        ({"name": "No template", "template_id": ""}, "template_id", "valid integer"),
        ({"name": "x", "template_id": "abc"}, "template_id", "valid integer"),
        ({"name": "Theirs", "template_id": str(world.notice)}, "template_id", "no template"),
    ]:
        answer = post(api, "/ui/whatsapp/campaigns", **form)
        assert answer.status_code == 200, form
        found = re.findall(rf'<p class="error" data-field="{field}">(.*?)</p>', answer.text)
        assert found and reason in found[0], (form, found)
        assert f'value="{markup.escape(form["name"])}"' in answer.text  # kept for a retry
    assert [c["name"] for c in rest(api, people, "/whatsapp/campaigns")["items"]] == ["Spring sale"]


def test_a_viewer_cannot_create_and_the_forms_token_is_needed(
    api: TestClient, people: People, world: Templates
) -> None:
    form = {"name": "Nope", "template_id": str(world.welcome)}
    refused = post(login(api, "viewer@acme.example.com"), "/ui/whatsapp/campaigns", **form)
    assert refused.status_code == 403 and "member" in " ".join(errors(refused.text))
    login(api, "member@acme.example.com")
    no_token = api.post("/ui/whatsapp/campaigns", data=form, headers=HTML, follow_redirects=False)
    assert no_token.status_code == 403
    assert [c["name"] for c in rest(api, people, "/whatsapp/campaigns")["items"]] == ["Spring sale"]


def test_a_member_pauses_and_resumes_what_a_person_paused_an_admin_deletes(
    api: TestClient, people: People, world: Templates
) -> None:
    login(api, "member@acme.example.com")
    post(api, "/ui/whatsapp/campaigns", name="Welcome wave", template_id=str(world.welcome))
    [mine] = [c["id"] for c in rest(api, people, "/whatsapp/campaigns")["items"]
              if c["name"] == "Welcome wave"]  # fmt: skip
    path = f"/ui/whatsapp/campaigns/{mine}"
    assert buttons(section(page_of(api, path), "campaign")) == ["Pause"]
    done = post(api, f"{path}/status", status="paused")
    assert done.headers["location"] == f"{path}?notice=campaign_paused"
    campaign = section(page_of(api, path), "campaign")
    assert "Paused because MANUAL" in text(campaign) and buttons(campaign) == ["Resume"]
    assert post(api, f"{path}/status", status="active").status_code == 303
    assert rest(api, people, f"/whatsapp/campaigns/{mine}")["status"] == "active"
    assert post(api, f"{path}/status", status="stopped").status_code == 400

    # The template's pause is an admin's to lift; deleting too.
    spring = f"/ui/whatsapp/campaigns/{world.spring_sale}"
    assert buttons(section(page_of(api, spring), "campaign")) == []
    assert post(api, f"{spring}/status", status="active").status_code == 403
    assert post(api, f"{path}/delete").status_code == 403

    login(api, "admin@acme.example.com")
    done = post(api, f"{path}/delete")
    assert done.headers["location"] == "/ui/whatsapp?notice=campaign_deleted"
    page_of(api, path, 404)
    assert post(api, f"/ui/whatsapp/campaigns/{world.globex_launch}/delete").status_code == 404


def test_an_admin_resumes_the_campaigns_of_a_reinstated_template_in_one_click(
    api: TestClient, runtime: Runtime, people: People, world: Templates
) -> None:
    login(api, "member@acme.example.com")
    post(api, "/ui/whatsapp/campaigns", name="Held", template_id=str(world.welcome))
    [held] = [c["id"] for c in rest(api, people, "/whatsapp/campaigns")["items"]
              if c["name"] == "Held"]  # fmt: skip
    post(api, f"/ui/whatsapp/campaigns/{held}/status", status="paused")
    path = f"/ui/whatsapp/templates/{world.promo}"
    login(api, "admin@acme.example.com")
    campaigns = section(page_of(api, path), "template-campaigns")
    assert list(rows(campaigns, "data-campaign-id")) == [world.spring_sale]
    assert buttons(campaigns) == []  # still PAUSED: nothing to resume yet

    meta(runtime.engine, "acme", "111", "5002", T0 + 2 * HOUR, event="REINSTATED")
    for role in ("viewer", "member"):
        html = page_of(login(api, f"{role}@acme.example.com"), path)
        assert buttons(section(html, "template-campaigns")) == []
        assert post(api, f"{path}/resume-campaigns").status_code == 403
    login(api, "admin@acme.example.com")
    campaigns = section(page_of(api, path), "template-campaigns")
    assert 'data-live="whatsapp_campaign whatsapp_template:' in campaigns
    assert buttons(campaigns) == ["Resume the campaigns paused for it"]
    assert "1 campaign paused for it" in text(campaigns)

    done = post(api, f"{path}/resume-campaigns")
    assert done.headers["location"] == f"{path}?notice=campaigns_resumed"
    campaigns = section(page_of(api, done.headers["location"]), "template-campaigns")
    assert buttons(campaigns) == []
    assert rest(api, people, f"/whatsapp/campaigns/{world.spring_sale}")["status"] == "active"
    assert rest(api, people, f"/whatsapp/campaigns/{held}")["status"] == "paused"  # a person's
    theirs = f"/ui/whatsapp/templates/{world.notice}/resume-campaigns"
    assert post(api, theirs).status_code == 404
