"""The second channel: a tenant's chat webhook (Slack-compatible incoming webhook: a JSON POST
of `{"text": …, "blocks": […]}`), set by the tenant's admins. Every notification of the
tenant becomes one chat message, beside the e-mails its people chose; the sender (job.py)
sends it with the same lease, retries and backoff as an e-mail.

Each POST is signed as Standard Webhooks sign (`webhook-id`, `webhook-timestamp`,
`webhook-signature: v1,<base64 HMAC-SHA256>` over `id.timestamp.body`), with the tenant's
own generated secret (`whsec_…`), so a receiver can tell hookyard's messages from anyone
else's. The URL is a credential (whoever has it can post): it is never logged, and errors
and answers show its host only. All SQL on `notification_chat_webhooks` is here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Connection, Engine, Exists, Select, delete, exists, select, update

from hookyard.db.engine import writer
from hookyard.db.rows import insert_missing
from hookyard.http import ApiClient, passing
from hookyard.notify.render import Item
from hookyard.notify.smtp import Outcome
from hookyard.notify.tables import chat_webhooks
from hookyard.providers.signing import standard_webhooks_headers, standard_webhooks_secret
from hookyard.queue.backoff import retry_after_seconds

PROVIDER = "chat webhook"


@dataclass(frozen=True, slots=True)
class ChatWebhook:
    tenant: str
    url: str
    secret: str
    enabled: bool
    created_at: datetime
    updated_at: datetime

    @property
    def host(self) -> str:
        return shown(self.url)

    def __repr__(self) -> str:  # never the URL's path nor the secret
        return f"ChatWebhook(tenant={self.tenant!r}, host={self.host!r}, enabled={self.enabled})"


def shown(url: str) -> str:
    """What may be shown of a webhook URL: its scheme and host (the path is the secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/…"


def check_url(url: str) -> str | None:
    """Why `url` cannot be a chat webhook, or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "the URL cannot be read"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "the URL needs https:// (or http://) and a host"
    if parts.username or parts.password:
        return "the URL must not carry a user or password"
    return None


# -- the tenant's setting -----------------------------------------------------------------------


def _of(row: Any) -> ChatWebhook:
    return ChatWebhook(
        row.tenant, row.url, row.secret, bool(row.enabled), row.created_at, row.updated_at
    )


def find(conn: Connection, tenant: str) -> ChatWebhook | None:
    row = conn.execute(select(chat_webhooks).where(chat_webhooks.c.tenant == tenant)).first()
    return None if row is None else _of(row)


def enabled_tenants(conn: Connection, tenants: set[str]) -> set[str]:
    """Of `tenants`, those with a chat webhook turned on."""
    if not tenants:
        return set()
    query = select(chat_webhooks.c.tenant).where(
        chat_webhooks.c.tenant.in_(sorted(tenants)), chat_webhooks.c.enabled.is_(True)
    )
    return {str(t) for t in conn.execute(query).scalars()}


def enabled_tenant_ids() -> Select[tuple[str]]:
    """The tenants whose chat webhook is on, as a subquery (`tenant IN (…)`)."""
    return select(chat_webhooks.c.tenant).where(chat_webhooks.c.enabled.is_(True))


def any_enabled() -> Exists:
    """Whether any tenant has its chat webhook on (an EXISTS, to select)."""
    return exists(enabled_tenant_ids())


def configure(
    engine: Engine, tenant: str, url: str, *, enabled: bool = True, rotate: bool = False
) -> ChatWebhook:
    """Set the tenant's webhook; its secret is made on the first setting and kept after,
    unless `rotate`."""
    now = datetime.now(UTC)
    with writer(engine).begin() as tx:
        insert_missing(
            tx,
            chat_webhooks,
            {
                "tenant": tenant,
                "url": url,
                "secret": standard_webhooks_secret(),
                "enabled": enabled,
                "created_at": now,
                "updated_at": now,
            },
            ["tenant"],
        )
        values: dict[str, Any] = {"url": url, "enabled": enabled, "updated_at": now}
        if rotate:
            values["secret"] = standard_webhooks_secret()
        tx.execute(update(chat_webhooks).where(chat_webhooks.c.tenant == tenant).values(values))
        found = find(tx, tenant)
    assert found is not None
    return found


def remove(engine: Engine, tenant: str) -> bool:
    with writer(engine).begin() as tx:
        done = tx.execute(delete(chat_webhooks).where(chat_webhooks.c.tenant == tenant))
    return bool(done.rowcount)


# -- the message --------------------------------------------------------------------------------


def payload(item: Item, tenant_name: str) -> dict[str, Any]:
    """Slack's incoming-webhook body: `text` (what every receiver shows, and Slack's
    notification line), and `blocks` with the detail (receivers that ignore them lose
    nothing essential)."""
    fields = [
        f"*{key.replace('_', ' ')}*: {_plain(value)}"
        for key, value in item.data.items()
        if value is not None and value != "" and not isinstance(value, dict | list)
    ][:10]
    text = f"[hookyard] {tenant_name}: {item.headline}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _escape(text)}}
    ]
    if fields:
        blocks.append(
            {"type": "section", "fields": [{"type": "mrkdwn", "text": _escape(f)} for f in fields]}
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"{item.kind.value} · {item.created_at:%Y-%m-%d %H:%M} UTC",
                }
            ],
        }
    )
    return {"text": text, "blocks": blocks}


def _plain(value: Any) -> str:
    return " ".join(str(value).split())[:300]


def _escape(text: str) -> str:
    """Slack's three control characters (provider data must not become a mention or link)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def post(
    client: ApiClient, hook: ChatWebhook, msg_id: str, message: Mapping[str, Any], now: datetime
) -> Outcome:
    """POST one signed message, once (`ApiClient.exchange`: the signature covers these exact
    bytes, and the sender's leased queue does the retrying); its outcome as the sender
    records it: sent, or an error that is transient (no answer, 408, 425, 429, 5xx: retried
    after the backoff or the receiver's Retry-After) or not (another refusal)."""
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    headers = standard_webhooks_headers(hook.secret, msg_id, body, now.timestamp())
    answer = client.exchange("POST", hook.url, content=body, headers=headers, max_body=512)
    status = answer.status
    if status is None:
        # The exception's text may hold the URL: only its kind and the host are kept.
        return Outcome(f"{PROVIDER} {hook.host}: {answer.error_type}", transient=True)
    if 200 <= status < 300:
        return Outcome()
    error = f"{PROVIDER} {hook.host}: {status} {httpx.codes.get_reason_phrase(status)}"
    wait = retry_after_seconds(answer.headers.get("retry-after")) if passing(status) else None
    return Outcome(error.rstrip(), transient=passing(status), retry_after=wait)


def client(timeout: float) -> ApiClient:
    """The one HTTP client (hookyard.http), trying each POST once: the sender's leased queue
    retries, so a message that may have reached the receiver is not repeated within a pass."""
    return ApiClient(provider=PROVIDER, timeout=timeout, max_attempts=1)
