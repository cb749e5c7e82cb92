"""E-mails from Jinja2 templates: one base layout (`layout.html` / `layout.txt`), one
fragment per kind in each form (`kinds/<kind>.html|txt`), an immediate message shows one
fragment and a digest lists several. HTML is autoescaped (the data comes from providers'
payloads); the text form is plain text, never interpreted by a reader as markup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from hookyard.notify.kinds import Kind, headline

PREFIX = "[hookyard]"

_env = Environment(
    loader=PackageLoader("hookyard.notify", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), disabled_extensions=("txt",)),
    undefined=StrictUndefined,  # a template naming data that is not there fails, loudly
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


@dataclass(frozen=True, slots=True)
class Item:
    """One notification as the templates see it."""

    kind: Kind
    data: Mapping[str, Any]
    created_at: datetime

    @property
    def headline(self) -> str:
        return headline(self.kind, self.data)


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


def render_one(item: Item, tenant_name: str) -> Rendered:
    context = {"item": item, "d": item.data, "tenant": tenant_name, "title": item.headline}
    return Rendered(
        f"{PREFIX} {item.headline}",
        _env.get_template("single.txt").render(context),
        _env.get_template("single.html").render(context),
    )


def render_digest(items: Sequence[Item], tenant_name: str, day: date) -> Rendered:
    count = len(items)
    title = f"{count} notification{'s' if count != 1 else ''} for {tenant_name}"
    context = {"items": items, "tenant": tenant_name, "title": title, "day": day.isoformat()}
    subject = " ".join(f"{PREFIX} Daily digest: {title}, {day.isoformat()}".split())[:250]
    return Rendered(
        subject,
        _env.get_template("digest.txt").render(context),
        _env.get_template("digest.html").render(context),
    )


def message(rendered: Rendered, sender: str, to: str, kind: str) -> EmailMessage:
    """A multipart/alternative e-mail: the text form first, the HTML form preferred."""
    msg = EmailMessage()
    msg["Subject"] = rendered.subject
    msg["From"] = sender
    msg["To"] = to
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid("hookyard", _domain(sender))
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    msg["X-Hookyard-Notification"] = kind
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    return msg


def _domain(sender: str) -> str | None:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or None
