"""What viewers see of events (issue 12): an event's `last_error` masked like its payload, in
the API's list and detail and on the dashboard's pages; and a payload nested far deeper than
any real webhook (600 levels) shown to every role without a failure, masked whole below the
depth bound for viewers. (Lead names: tests/test_api_domain.py and tests/test_web_leads.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hookyard.api.privacy import MAX_DEPTH, clip_depth, mask_error
from hookyard.api.privacy import mask_personal as mask_person_data
from hookyard.api.schemas import mask_personal
from hookyard.runtime import Runtime
from tests.people import People
from tests.support import LEAD, SOURCES_TOML, TENANT_SOURCES, add, set_status
from tests.web_support import HTML, login

ERROR = (
    "ValueError: no customer for 'maria.test@example.com' (phone \"11987654321\", "
    "document 12345678909)"
)
SECRETS_IN_ERROR = ("maria.test@", "11987654321", "12345678909")


@pytest.fixture
def sources_file(tmp_path: Path) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(SOURCES_TOML + TENANT_SOURCES)  # and acme-hooks, globex-hooks
    return path


def nested(depth: int, leaf: Any) -> Any:
    """{"a": {"a": … leaf}} with `depth` objects."""
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def depth_of(value: Any) -> int:
    depth = 0
    while isinstance(value, dict):
        value, depth = value.get("a"), depth + 1
    return depth


def failed_event(runtime: Runtime) -> int:
    [event] = add(runtime, "acme", payload=LEAD)
    set_status(runtime, [event], "dead", last_error=ERROR, last_traceback="Traceback …")
    return event


# -- last_error -----------------------------------------------------------------------------


def test_a_viewer_gets_last_error_masked_in_the_list_and_the_detail(
    api: TestClient, runtime: Runtime, people: People
) -> None:
    event = failed_event(runtime)
    viewer = people.headers("acme", "viewer")
    [listed] = api.get("/api/v1/events", headers=viewer).json()["items"]
    detail = api.get(f"/api/v1/events/{event}", headers=viewer).json()
    masked = "ValueError: no customer for '***' (phone '***', document ***09)"
    assert listed["last_error"] == detail["last_error"] == masked
    assert detail["last_traceback"] is None and detail["masked"] is True


def test_members_and_up_get_last_error_as_stored(
    api: TestClient, runtime: Runtime, people: People
) -> None:
    event = failed_event(runtime)
    for role in ("member", "admin"):
        headers = people.headers("acme", role)
        [listed] = api.get("/api/v1/events", headers=headers).json()["items"]
        detail = api.get(f"/api/v1/events/{event}", headers=headers).json()
        assert listed["last_error"] == detail["last_error"] == ERROR, role


def test_the_dashboard_shows_a_viewer_the_masked_error_only(
    api: TestClient, runtime: Runtime, people: People
) -> None:
    event = failed_event(runtime)
    login(api, "viewer@acme.example.com")
    for path in ("/ui/events", f"/ui/events/{event}", "/ui/events?status=dead"):
        answer = api.get(path, headers=HTML)
        assert answer.status_code == 200, path
        assert "ValueError: no customer for" in answer.text, path
        for secret in SECRETS_IN_ERROR:
            assert secret not in answer.text, (path, secret)


def test_mask_error_keeps_the_kind_and_masks_what_it_quotes() -> None:
    assert mask_error(ERROR) == "ValueError: no customer for '***' (phone '***', document ***09)"
    assert mask_error("lease expired: worker stopped or too slow") == (
        "lease expired: worker stopped or too slow"
    )
    assert mask_error(None) is None and mask_error("") == ""


# -- deep payloads --------------------------------------------------------------------------


def test_a_payload_600_levels_deep_shows_for_every_role(
    api: TestClient, runtime: Runtime, people: People
) -> None:
    [event] = add(runtime, "acme", payload=nested(600, {"email": "deep@example.com"}))
    for role, headers in people.every("acme").items():
        answer = api.get(f"/api/v1/events/{event}", headers=headers)
        assert answer.status_code == 200, (role, answer.text[:300])
        payload = answer.json()["payload"]
        assert depth_of(payload) == MAX_DEPTH, role  # below the bound, a replacement
        assert "deep@example.com" not in str(payload), role  # (a superadmin has the body)
    viewer = api.get(f"/api/v1/events/{event}", headers=people.headers("acme", "viewer")).json()
    assert clip_depth(viewer["payload"], None, MAX_DEPTH - 1) == nested(MAX_DEPTH - 1, None)
    assert str(viewer["payload"]).endswith("'***'" + "}" * MAX_DEPTH)


def test_a_viewers_event_page_for_a_600_deep_payload_answers_200(
    api: TestClient, runtime: Runtime, people: People
) -> None:
    [event] = add(runtime, "acme", payload=nested(600, {"email": "deep@example.com"}))
    for email in ("viewer@acme.example.com", "member@acme.example.com"):
        login(api, email)
        answer = api.get(f"/ui/events/{event}", headers=HTML)
        assert answer.status_code == 200, (email, answer.text[:300])
        assert "deep@example.com" not in answer.text


def test_the_masks_take_any_depth() -> None:
    very_deep = nested(100_000, {"phone": "11987654321"})
    masked = mask_personal(very_deep)
    assert depth_of(masked) == MAX_DEPTH and "1198765" not in str(masked)[-200:]
    assert depth_of(mask_person_data(very_deep)) == MAX_DEPTH
    assert depth_of(clip_depth(very_deep)) == MAX_DEPTH
    # Within the bound, nothing changes but what is personal.
    shallow = nested(10, {"phone": "11987654321", "kind": "work"})
    assert mask_personal(shallow) == nested(10, {"phone": "***", "kind": "work"})
    assert clip_depth(shallow) == shallow
    assert clip_depth([[1, [2]], (3,)], "cut", 2) == [[1, "cut"], [3]]
