"""Settings: the only module that reads `HOOKYARD_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///hookyard.sqlite"
# prometheus_client's own variable (not a setting): where each process of a `serve` run keeps
# its counters (hookyard.metrics). Named here so that the supervisor, which counts nothing,
# need not import the metrics (their files would be made for it too).
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


class ConfigError(ValueError):
    """A configuration that cannot work; the message names what to change. The CLI reports it
    on one line and exits 2 (the sources file's errors, the enrichment settings' errors)."""


def normalise_database_url(url: str) -> str:
    """Accept the URLs people paste (`postgres://`, `postgresql://`) and pick our drivers."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(text: str) -> str:
    """An origin as browsers send it in `Origin` (`https://portal.example.com`, a port only
    when not the scheme's default), or ValueError naming what is wrong."""
    text = text.strip()
    if text == "*" or "*" in text:
        raise ValueError(f"HOOKYARD_CORS_ORIGINS lists exact origins, not {text!r}")
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        parts.scheme.lower() not in _DEFAULT_PORTS
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or port == -1
    ):
        raise ValueError(
            f"HOOKYARD_CORS_ORIGINS: {text!r} is not an origin (scheme://host[:port], no path)"
        )
    scheme = parts.scheme.lower()
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOOKYARD_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    sources: Path | None = Field(default=None, description="path of a sources TOML file")
    demo_secrets_file: Path = Path("hookyard-demo-secrets.env")

    # Demo-source secrets (used only when no sources file is given).
    hubspot_client_secret: str | None = None
    meta_app_secret: str | None = None
    meta_verify_token: str | None = None
    c2s_webhook_token: str | None = None
    tcr_token: str | None = None
    generic_secret: str | None = None
    admin_token: str | None = None
    # Signs dashboard sessions (HS256); generated with the demo secrets when unset.
    session_secret: str | None = Field(default=None, min_length=32)
    session_minutes: float = 15.0

    # The management API and dashboard (docs/security.md). Bodies are refused over these
    # sizes before anything parses them; the login forms take far less than the rest.
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    login_max_body_bytes: int = Field(default=64 * 1024, ge=1)
    # Failed password logins, API keys and admin tokens: after this many in the window, a
    # client address (and, for passwords and API keys, the account) gets 429 until the
    # oldest failure leaves the window. Counted by each ingest process on its own.
    auth_failures_per_client: int = Field(default=10, ge=1)
    auth_failures_per_account: int = Field(default=10, ge=1)
    auth_failure_window_seconds: float = Field(default=300.0, gt=0)
    # Password checks (argon2id: 64 MiB and ~50 ms of CPU each) running at once per process;
    # a login that waits longer than login_wait_seconds for its turn gets 503.
    login_concurrency: int = Field(default=4, ge=1)
    login_wait_seconds: float = Field(default=5.0, gt=0)
    # Cookies are Secure on https (seen directly, or through X-Forwarded-Proto with
    # trust_proxy_headers); this marks them Secure always, for a proxy hookyard cannot see.
    secure_cookies: bool = False
    hsts_seconds: int = Field(default=31_536_000, ge=0)  # on https answers; 0: no HSTS
    # /metrics needs `Authorization: Bearer` with this token (or the admin token, or a
    # superadmin's key) unless metrics_public says the listener is private.
    metrics_token: str | None = None
    metrics_public: bool = False
    api_docs: bool = False  # Swagger UI at /docs and ReDoc at /redoc (/openapi.json always)
    # Origins (exact, comma-separated: `https://portal.example.com`) whose pages may call the
    # management API from a browser (CORS, api/cors.py); empty: no CORS at all.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()

    # Ingress.
    max_body_bytes: int = 1024 * 1024
    body_timeout_seconds: float = Field(default=15.0, gt=0)  # a webhook body slower: 408
    trust_proxy_headers: bool = False
    accept_timeout_seconds: float = 10.0
    api_timeout_seconds: float = 10.0  # management API, /ready, /metrics
    max_batch_size: int = 512
    commit_concurrency: int = 2  # PostgreSQL: group commits in flight at once
    rejected_log_size: int = 1000

    # Processes of `hookyard serve` (None: fit the machine, hookyard.supervisor.default_sizes).
    processes: int | None = Field(default=None, ge=1)  # ingest and API processes
    workers: int | None = Field(default=None, ge=0)  # worker processes
    process_name: str | None = None  # set by the supervisor in each child: its logs say so

    # Workers.
    worker_threads: int = 1  # threads per worker process
    claim_batch_size: int = 100
    # After a claim smaller than a batch, a worker waits this long before the next one, so
    # that under load events are handled in batches (fewer transactions, write locks, fsyncs).
    claim_gather_seconds: float = Field(default=0.01, ge=0)
    max_attempts: int = 8
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 3600.0
    lease_seconds: float = 60.0
    # A batch's handlers running longer than this are stopped (their statement cancelled)
    # and the events retried; until then a heartbeat keeps their lease (PostgreSQL).
    handler_timeout_seconds: float = Field(default=300.0, gt=0)
    retention_days: int = 30
    retention_interval_seconds: float = 3600.0
    # Providers whose finished events are an audit trail (comma-separated; empty: none): kept
    # by retention forever, or for audit_retention_days when that is above 0.
    audit_providers: Annotated[tuple[str, ...], NoDecode] = ("tcr",)
    audit_retention_days: int = Field(default=0, ge=0)

    # C2S lead enrichment (docs/providers/c2s.md). Off while none of the URLs is set.
    enrichment_steps: str = "identity,person,message"  # in order; a name or "module:factory"
    enrichment_identity_url: str | None = None
    enrichment_identity_token: str | None = None
    enrichment_person_url: str | None = None
    enrichment_person_token: str | None = None
    c2s_api_url: str | None = None  # e.g. https://api.contact2sale.com
    c2s_api_token: str | None = None
    c2s_message_path: str = "/integration/leads/{lead_id}/create_message"  # not confirmed
    enrichment_timeout_seconds: float = 10.0  # per HTTP call (connect, read, write, pool)
    enrichment_max_attempts: int = 5
    enrichment_retry_base_seconds: float = 30.0
    enrichment_retry_max_seconds: float = 3600.0
    enrichment_lease_seconds: float = 120.0  # a run not finished by then is taken back
    enrichment_batch_size: int = 20  # leads per worker loop pass
    # C2S placeholder e-mails (contacts.FakeEmails): regular expressions searched in the local
    # part, as a JSON list, replacing the defaults; the check off: every address is kept.
    leads_fake_email_check: bool = True
    leads_fake_email_patterns: tuple[str, ...] | None = None

    # Provider APIs: reconciliation, HubSpot outbound sync, TCR subscriptions (docs/sync.md).
    # Each provider's part is off until its credentials are set.
    tcr_api_url: str = "https://csp-api.campaignregistry.com"
    tcr_api_key: str | None = None
    tcr_api_secret: str | None = None
    # hookyard's public base URL (https://hooks.example.com): with it, TCR's BRAND, CAMPAIGN
    # and VETTING categories are subscribed to hookyard's TCR sources at start-up.
    tcr_subscribe_url: str | None = None
    hubspot_api_url: str = "https://api.hubapi.com"
    hubspot_access_token: str | None = None
    # The HubSpot company property of a customer field where it is not the default
    # (`hookyard_<field>`; company_name: HubSpot's `name`), as JSON: {"ban": "account_ban"}.
    hubspot_property_names: dict[str, str] = Field(default_factory=dict)
    meta_api_url: str = "https://graph.facebook.com/v21.0"
    meta_access_token: str | None = None
    provider_timeout_seconds: float = 10.0
    provider_max_attempts: int = 3  # within one call, for connection errors, 429 and 5xx
    provider_backoff_seconds: float = 0.5
    provider_rate_per_second: float = 10.0  # per provider and process (HubSpot: 100 / 10 s)
    scheduler_enabled: bool = True
    schedule_tcr_review_seconds: float = 300.0  # campaigns in REVIEW (or PENDING)
    schedule_tcr_brands_seconds: float = 900.0  # brands PENDING, REGISTERED or UNVERIFIED
    schedule_tcr_active_seconds: float = 86400.0  # ACTIVE campaigns
    schedule_hubspot_seconds: float = 86400.0  # full HubSpot reconciliation
    schedule_meta_seconds: float = 3600.0  # templates not in a final state
    sync_max_attempts: int = 4  # HubSpot outbox: the first send and three retries
    sync_backoff_seconds: float = 30.0  # doubled per retry; Retry-After when longer

    # E-mail notifications (docs/notifications.md). Off while smtp_host is unset: changes are
    # still recorded, and sent once it is set (unless older than notify_max_age_hours).
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True  # upgrade with STARTTLS, required (port 587)
    smtp_tls: bool = False  # implicit TLS from the first byte (port 465); wins over STARTTLS
    smtp_from: str | None = None  # required with smtp_host: "hookyard <alerts@example.com>"
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)  # connect and each command
    notify_max_attempts: int = Field(default=6, ge=1)  # sends of one e-mail before `failed`
    notify_backoff_seconds: float = Field(default=60.0, ge=0)  # doubled per retry, jittered
    notify_backoff_max_seconds: float = Field(default=3600.0, ge=0)
    notify_lease_seconds: float = Field(default=120.0, gt=0)  # a send not finished is retaken
    notify_batch_size: int = Field(default=50, ge=1)  # e-mails per worker loop pass
    notify_digest_hour: int = Field(default=8, ge=0, le=23)  # UTC hour of the daily digest
    notify_max_age_hours: float = Field(default=72.0, gt=0)  # older unsent news is dropped
    # Where a C2S lead names its manager (dotted paths into the webhook body, first valid
    # e-mail wins; not confirmed publicly). None found: the tenant's admins are told.
    notify_lead_manager_fields: str = "attributes.seller.email,attributes.manager.email"

    # Destinations (`[[destination]]` in the sources file; docs/destinations.md). Retries of
    # a delivery use the one backoff (its max_attempts is the destination's own setting).
    destination_retry_base_seconds: float = Field(default=2.0, ge=0)
    destination_retry_max_seconds: float = Field(default=3600.0, ge=0)
    destination_lease_seconds: float = Field(default=60.0, gt=0)  # a send not finished is retaken
    destination_batch_size: int = Field(default=50, ge=1)  # deliveries per worker loop pass
    destination_concurrency: int = Field(default=12, ge=1)  # sends at once per worker process
    # PostgreSQL: loops per worker process sending deliveries beside the event loop
    destination_loops: int = Field(default=4, ge=1, le=32)
    destination_circuit_failures: int = Field(default=5, ge=1)  # consecutive: the circuit opens
    destination_probe_seconds: float = Field(default=30.0, gt=0)  # open circuit: one probe per

    # Alert rules (docs/alerts.md): evaluated by the scheduler job `alerts.evaluate`. A
    # threshold of 0 (false for the WhatsApp templates' rules) turns that rule's alerts off;
    # its gauge stays.
    alert_interval_seconds: float = Field(default=60.0, ge=0)  # 0: no evaluation
    alert_failure_rate: float = Field(default=0.2, ge=0, le=1)  # share of handled events
    alert_failure_window_seconds: float = Field(default=900.0, gt=0)  # events received since
    alert_failure_min_events: int = Field(default=20, ge=1)  # fewer handled: not judged
    alert_dead_events: int = Field(default=1, ge=0)  # dead events of a source
    alert_oldest_pending_seconds: float = Field(default=300.0, ge=0)  # a due event's wait
    alert_red_quality: bool = True  # a WhatsApp template with quality RED
    alert_template_disabled: bool = True  # a WhatsApp template with status DISABLED
    alert_template_rejected: bool = True  # a WhatsApp template with status REJECTED
    alert_reconciliation_drift: int = Field(default=1, ge=0)  # differences in a job's last run
    # A tenant's e-mail notifications failing: failed or retrying, of those tried in the window.
    alert_email_failure_rate: float = Field(default=0.5, ge=0, le=1)
    alert_email_failure_window_seconds: float = Field(default=3600.0, gt=0)
    alert_email_failure_min_deliveries: int = Field(default=3, ge=1)  # fewer: not judged
    # Tell a tenant's people (notification kind `alert_opened`) when one of these opens.
    # Not `red_quality`: the `template_red_quality` notification tells of it already.
    notify_alert_kinds: str = (
        "failure_rate,dead_events,oldest_pending,reconciliation_drift,email_failing"
    )
    alert_destination_circuit_open: bool = True  # a destination's circuit breaker is open

    log_level: str = "info"
    log_format: str = "console"

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _exact_origins(cls, value: Any) -> Any:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            return value
        return tuple(origin(str(item)) for item in items if str(item).strip())

    @field_validator("audit_providers", mode="before")
    @classmethod
    def _provider_names(cls, value: Any) -> Any:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            return value
        return tuple(str(item).strip().lower() for item in items if str(item).strip())

    @property
    def sqlalchemy_url(self) -> str:
        return normalise_database_url(self.database_url)

    @property
    def is_postgres(self) -> bool:
        return self.sqlalchemy_url.startswith("postgresql")
