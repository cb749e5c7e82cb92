"""Logging in to the dashboard from tests: a TestClient holding a person's session cookies,
and the CSRF token every dashboard POST needs; fetching a page and reading parts of it."""

from __future__ import annotations

import html as markup
import re
from typing import Any

from fastapi.testclient import TestClient

from tests.people import PASSWORD

HTML = {"accept": "text/html"}


def login(client: TestClient, email: str, password: str = PASSWORD) -> TestClient:
    """Log `client` in as that person (tenant people: `admin@acme.example.com`, …; the
    superadmin: `root@example.com`)."""
    client.cookies.clear()
    answer = client.post(
        "/ui/login", data={"email": email, "password": password}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    return client


def csrf(client: TestClient) -> str:
    token = client.cookies.get("hookyard_csrf")
    assert token, "log in first"
    return str(token)


def post(client: TestClient, path: str, **form: Any) -> Any:
    """A dashboard form POST as a browser sends it (CSRF field included), not followed."""
    return client.post(
        path, data={"csrf": csrf(client), **form}, headers=HTML, follow_redirects=False
    )


def errors(html: str) -> list[str]:
    return re.findall(r'<p class="error"[^>]*>(.*?)</p>', html, flags=re.S)


def page_of(client: TestClient, path: str, status: int = 200) -> str:
    """A dashboard page as a browser asks for it (redirects not followed), of that status."""
    answer = client.get(path, headers=HTML, follow_redirects=False)
    assert answer.status_code == status, answer.text
    return answer.text


def text(fragment: str) -> str:
    """What a person reads: no tags, entities decoded, one space between words."""
    return " ".join(markup.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def section(html: str, name: str) -> str:
    found = re.search(rf'<section id="{name}"[^>]*>.*?</section>', html, flags=re.S)
    assert found, f"no section {name}"
    return found.group(0)
