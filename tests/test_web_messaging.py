"""The dashboard's 10DLC pages (`/ui/messaging`): brands and campaigns with each carrier's
badge, filters and paging, a brand's campaigns and vettings, a campaign's carriers, the live
sections, and that no tenant sees another's rows. The rows are made by the TCR handler, as
webhooks would make them (`tests/domain_support.py`'s `tendlc_state`)."""

from __future__ import annotations

import html as markup
import re

import pytest
from fastapi.testclient import TestClient

from hookyard.runtime import Runtime
from hookyard.web import messaging
from tests.domain_support import tendlc_state
from tests.people import People
from tests.web_support import HTML, errors, login, page_of, section, text


@pytest.fixture
def brands(runtime: Runtime, people: People) -> None:
    """acme: a verified brand with a campaign two known carriers and one unknown MNO id
    reviewed, and a vetting; a registered brand without campaigns. globex: an unverified
    brand whose campaign Verizon rejected (`tests/test_api_domain.py`'s 10DLC rows)."""
    tendlc_state(runtime.engine)


def rows(html: str, attribute: str) -> dict[str, str]:
    """The value of each row's `data-…` attribute -> the row's text, in page order."""
    found = re.findall(rf'<tr {attribute}="([^"]+)">(.*?)</tr>', html, flags=re.S)
    return {key: text(row) for key, row in found}


def facts(fragment: str) -> str:
    found = re.search(r'<dl class="facts">.*?</dl>', fragment, flags=re.S)
    assert found, "no facts"
    return text(found.group(0))


def badges(fragment: str) -> dict[str, tuple[str, str]]:
    """MNO id -> (badge colour, text) of the carrier badges in `fragment`."""
    found = re.findall(
        r'<span class="badge (\w+)" data-carrier="(\d+)"[^>]*>([^<]*)</span>', fragment
    )
    return {mno: (colour, markup.unescape(word)) for colour, mno, word in found}


# -- the overview ---------------------------------------------------------------------------


def test_a_viewer_sees_the_tenants_brands_and_campaigns_with_carrier_badges(
    api: TestClient, brands: None
) -> None:
    html = page_of(login(api, "viewer@acme.example.com"), "/ui/messaging")
    shown = rows(section(html, "brands"), "data-brand-id")
    assert list(shown) == ["BACME02", "BACME01"]  # newest first
    assert shown["BACME01"] == (
        "BACME01 Acme PRIVATE_PROFIT VERIFIED VERIFIED 85 2025-12-01 12:00:00"
    )
    assert shown["BACME02"].startswith("BACME02 Acme Labs")
    assert 'href="/ui/messaging/brands/BACME01"' in html

    campaigns = section(html, "campaigns")
    [row] = rows(campaigns, "data-campaign-id").values()
    assert row.startswith("CACME01 BACME01")
    assert "AT&T: APPROVED" in row and "T-Mobile: REVIEW" in row
    assert badges(campaigns) == {
        "10017": ("good", "AT&T: APPROVED"),
        "10035": ("wait", "T-Mobile: REVIEW"),
        "20001": ("good", "MNO 20001: APPROVED"),  # a carrier not in the table yet: its id
    }
    assert 'href="/ui/messaging/campaigns/CACME01"' in campaigns
    for other in ("BGLOB01", "CGLOB01", "Globex", "Verizon"):
        assert other not in html
    assert "<th>Tenant</th>" not in html  # one tenant: no tenant column


def test_both_lists_refresh_live_on_their_first_page_only(
    api: TestClient, brands: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(messaging, "PAGE", 1)
    first = page_of(login(api, "viewer@acme.example.com"), "/ui/messaging")
    assert 'data-live="tendlc_brand"' in section(first, "brands")
    assert 'data-live="tendlc_campaign"' in section(first, "campaigns")
    assert 'hx-select="#brands"' in first and 'hx-select="#campaigns"' in first

    # One brand a page: the next page of brands follows its link, the campaigns stay put.
    assert list(rows(section(first, "brands"), "data-brand-id")) == ["BACME02"]
    older = re.search(r'href="(\?brands_before=\d+)"', first)
    assert older, "no link to the older brands"
    second = page_of(api, "/ui/messaging" + markup.unescape(older.group(1)))
    assert list(rows(section(second, "brands"), "data-brand-id")) == ["BACME01"]
    assert "data-live" not in section(second, "brands")
    assert 'data-live="tendlc_campaign"' in section(second, "campaigns")
    # A full page always offers the next one (the API cannot know it is empty).
    last = re.search(r'href="(\?brands_before=\d+)"', second)
    assert last, "no link to the older brands"
    third = page_of(api, "/ui/messaging" + markup.unescape(last.group(1)))
    assert "No brands match." in section(third, "brands")
    assert "Older brands" not in third


def test_each_list_filters_on_its_own_status(api: TestClient, brands: None) -> None:
    login(api, "member@acme.example.com")
    verified = page_of(api, "/ui/messaging?brand_status=VERIFIED")
    assert list(rows(section(verified, "brands"), "data-brand-id")) == ["BACME01"]
    assert list(rows(section(verified, "campaigns"), "data-campaign-id")) == ["CACME01"]
    assert "<option selected>VERIFIED</option>" in verified

    rejected = page_of(api, "/ui/messaging?campaign_status=REJECTED")
    assert "No campaigns match." in section(rejected, "campaigns")  # globex's is not acme's
    assert len(rows(section(rejected, "brands"), "data-brand-id")) == 2


def test_a_bad_filter_or_cursor_is_a_400_page(api: TestClient, people: People) -> None:
    login(api, "viewer@acme.example.com")
    for query in (
        "brand_status=NOPE",
        "campaign_status=nope",
        "brands_before=0",
        "campaigns_before=x",
    ):
        assert errors(page_of(api, f"/ui/messaging?{query}", 400)), query


def test_a_superadmin_sees_every_tenant_with_its_name(api: TestClient, brands: None) -> None:
    html = page_of(login(api, "root@example.com"), "/ui/messaging")
    shown = rows(section(html, "brands"), "data-brand-id")
    assert set(shown) == {"BACME01", "BACME02", "BGLOB01"}
    assert shown["BGLOB01"].startswith("BGLOB01 globex Globex")
    campaigns = rows(section(html, "campaigns"), "data-campaign-id")
    assert campaigns["CGLOB01"].startswith("CGLOB01 BGLOB01 globex")
    assert "Verizon Wireless: REJECTED" in campaigns["CGLOB01"]


def test_the_pages_need_a_login(api: TestClient, brands: None) -> None:
    for path in ("/ui/messaging", "/ui/messaging/brands/BACME01", "/ui/messaging/campaigns/X"):
        answer = api.get(path, headers=HTML, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/ui/login?next=")


# -- a brand --------------------------------------------------------------------------------


def test_a_brand_shows_its_facts_campaigns_and_vettings(api: TestClient, brands: None) -> None:
    html = page_of(login(api, "viewer@acme.example.com"), "/ui/messaging/brands/BACME01")
    brand = section(html, "brand")
    shown = facts(brand)
    for fact in (
        "Status VERIFIED",
        "Identity VERIFIED",
        "Display name Acme",
        "Tenant acme",
        "Entity type PRIVATE_PROFIT",
        "Vertical RETAIL",
        "Trust score 85",
        "Last event BRAND_IDENTITY_STATUS_UPDATE · 2025-12-01 12:00:00",
    ):
        assert fact in shown
    [campaign] = rows(brand, "data-campaign-id").values()
    assert campaign.startswith("CACME01")
    assert badges(brand)["10035"] == ("wait", "T-Mobile: REVIEW")
    [vetting] = rows(brand, "data-vetting-id").values()
    assert vetting.startswith("EVP VET1 AEGIS STANDARD SCORED 80 EVP_REPORT_SCORE")
    assert 'data-live="tendlc_brand:BACME01 tendlc_campaign tendlc_vetting"' in brand
    assert 'hx-select="#brand"' in brand


def test_a_brand_without_campaigns_or_vettings_says_so(api: TestClient, brands: None) -> None:
    html = page_of(login(api, "viewer@acme.example.com"), "/ui/messaging/brands/BACME02")
    assert "No campaigns yet." in html and "No vettings yet." in html


def test_another_tenants_brand_or_campaign_is_a_404_page(api: TestClient, brands: None) -> None:
    login(api, "admin@acme.example.com")
    for path in (
        "/ui/messaging/brands/BGLOB01",
        "/ui/messaging/campaigns/CGLOB01",
        "/ui/messaging/brands/BNONE99",
        "/ui/messaging/campaigns/CNONE99",
    ):
        html = page_of(api, path, 404)
        assert errors(html) and "Globex" not in html and "opt-in" not in html


def test_a_bad_path_id_is_a_400_page(api: TestClient, people: People) -> None:
    login(api, "viewer@acme.example.com")
    for area in ("brands", "campaigns"):
        for bad in ("B" * 51, "B%00C"):  # longer than a TCR id can be; a NUL
            assert errors(page_of(api, f"/ui/messaging/{area}/{bad}", 400)), (area, bad)


# -- a campaign -----------------------------------------------------------------------------


def test_a_campaign_shows_each_carrier_in_a_live_section(api: TestClient, brands: None) -> None:
    html = page_of(login(api, "viewer@acme.example.com"), "/ui/messaging/campaigns/CACME01")
    shown = facts(section(html, "campaign"))
    assert "Status ACTIVE" in shown and "Brand BACME01" in shown and "Tenant acme" in shown
    assert 'href="/ui/messaging/brands/BACME01"' in html

    carriers = section(html, "carriers")
    assert 'data-live="tendlc_campaign:CACME01"' in carriers
    assert 'hx-select="#carriers"' in carriers
    shown = rows(carriers, "data-mno-id")
    assert list(shown) == ["10017", "10035", "20001"]
    assert shown["10017"].startswith("AT&T 10017 APPROVED MNO_CAMPAIGN_OPERATION_APPROVED")
    assert shown["20001"].startswith("MNO 20001 20001 APPROVED")
    assert badges(carriers) == {
        "10017": ("good", "APPROVED"),
        "10035": ("wait", "REVIEW"),
        "20001": ("good", "APPROVED"),
    }


def test_a_rejected_campaign_shows_why_to_its_tenant(api: TestClient, brands: None) -> None:
    html = page_of(login(api, "viewer@globex.example.com"), "/ui/messaging/campaigns/CGLOB01")
    assert "Status REJECTED" in text(section(html, "campaign"))
    assert "opt-in flow unclear" in html
    assert badges(section(html, "carriers")) == {"10999": ("bad", "REJECTED")}
    assert rows(section(html, "carriers"), "data-mno-id")["10999"].startswith(
        "Verizon Wireless 10999"
    )
