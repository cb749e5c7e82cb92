"""Enrichment steps: the seam of the pipeline, and the three built-in ones.

A step has a `name` and `run(lead, result)`. It reads the lead's contact and adds to the
result; it can end the run with an outcome (`result.stop`), or raise `StepError`: transient
(retried later, no sooner than `retry_after`) or definitive (the lead fails at once). Steps
never touch the database: the pipeline claims the lead before and records the result after,
each in its own short transaction.

The built-in steps are HTTP clients, each configured by a base URL and a bearer token:

- ``identity`` looks the e-mail and the phone up *separately*. The lead is the same person
  only when both resolve to the same document (`done`). When only one of them resolves (the
  other resolves to none, or the lead has no valid one), the run goes on with that document
  as `enriched_single_source`: the person is found, but not confirmed to be the lead's.
  Different documents end the run `not_same_person`, none `unmatched`.
- ``person`` fetches the person's data by that document.
- ``message`` posts a message with the result to the lead through the C2S API; a
  single-source result says that the contacts were not confirmed to be the same person.

`HOOKYARD_ENRICHMENT_STEPS` lists them in order; an entry `package.module:factory` adds a
custom step: `factory(settings, http)` is called once at start with the settings and the
pipeline's HTTP client (`hookyard.http.ApiClient`: timeouts, retries where safe, errors as
`ApiError`) and returns the step.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

import httpx

from hookyard.config import ConfigError, Settings
from hookyard.domain.leads.service import EnrichmentStatus
from hookyard.http import ApiClient, ApiError

STEPS_SETTING = "HOOKYARD_ENRICHMENT_STEPS"


class EnrichmentConfigError(ConfigError):
    """The enrichment settings cannot work; the message names the setting to change. (A
    ConfigError, so the CLI reports it like any other configuration error.)"""


@dataclass(frozen=True, slots=True)
class Lead:
    """What a step sees of a lead: its normalised contact, as claimed."""

    id: int
    c2s_lead_id: str
    tenant: str | None
    name: str | None
    email: str | None
    phone: str | None
    contact_hash: str
    attempt: int  # 1 on the first run


NOT_CONFIRMED = "the e-mail and the phone were not confirmed to be the same person"
NO_PERSON_DATA = "the person service has no data for the document"


@dataclass(slots=True)
class Result:
    """What the steps found so far. Stays `done` unless a step stops the run or finds the
    person by one contact only (`enriched_single_source`, `single_source` saying which)."""

    document: str | None = None
    data: dict[str, Any] | None = None
    status: EnrichmentStatus = EnrichmentStatus.DONE
    reason: str | None = None
    stopped: bool = False
    single_source: str | None = None  # "e-mail" or "phone": the one contact that resolved

    def stop(self, status: EnrichmentStatus, reason: str) -> None:
        """End the run with this outcome; the later steps do not run."""
        self.status, self.reason, self.stopped = status, reason, True

    def add_reason(self, reason: str) -> None:
        """One more thing the lead's `enrichment_reason` says, after what it says already."""
        self.reason = f"{self.reason}; {reason}" if self.reason else reason


class StepError(Exception):
    """A step could not finish. `message` is logged, so it never carries personal data or
    credentials; `detail` (an unexpected exception's text) is only stored on the lead."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        retry_after: float | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.retry_after = retry_after  # seconds; the earliest next attempt (Retry-After)
        self.detail = detail

    @property
    def stored(self) -> str:
        return f"{self.message}: {self.detail}" if self.detail else self.message


@runtime_checkable
class Step(Protocol):
    name: str

    def run(self, lead: Lead, result: Result) -> None: ...


StepFactory = Callable[[Settings, ApiClient], Step]


# --- HTTP -----------------------------------------------------------------------------------


def env_name(setting: str) -> str:
    return "HOOKYARD_" + setting.upper()


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A service a built-in step calls; the setting names make its errors say what to fix."""

    step: str
    base_url: str
    token: str | None
    url_setting: str
    token_setting: str

    def post(
        self,
        http: ApiClient,
        path: str,
        body: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """The JSON answer of a POST; StepError for anything else (`step_error`). The client
        tries again within the call only a connection that never opened: anything else is
        the pipeline's to retry, with its own backoff."""
        sent = {"accept": "application/json", **(headers or {})}
        if self.token:
            sent["authorization"] = f"Bearer {self.token}"
        url = self.base_url.rstrip("/") + path
        try:
            response = http.request("POST", url, json=body, headers=sent)
        except ApiError as exc:
            raise step_error(self, exc) from exc
        answered = f"{self.step}: answered {response.status_code} {response.reason_phrase}"
        try:
            return response.json()
        except ValueError as exc:
            raise StepError(f"{answered.rstrip()} without a JSON body", transient=False) from exc


def step_error(endpoint: Endpoint, error: ApiError) -> StepError:
    """The client's error as the step's. Transient: what may pass by itself (no connection, a
    timeout, 408, 425, 429, 5xx), no sooner than its Retry-After. Definitive: any other status
    that is not 2xx, a URL that is not http(s). The message names the setting to fix and
    never carries the service's words (they may echo the lead's personal data)."""
    step = endpoint.step
    cause = error.__cause__
    if error.status is not None:
        answered = f"{step}: answered {error.status} {error.reason}".rstrip()
        if error.status in (401, 403):
            answered += f": check {env_name(endpoint.token_setting)}"
        return StepError(answered, transient=error.retryable, retry_after=error.retry_after)
    if isinstance(cause, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return StepError(
            f"{step}: not an http(s) URL: check {env_name(endpoint.url_setting)}",
            transient=False,
        )
    if isinstance(cause, httpx.TimeoutException):
        return StepError(f"{step}: timed out ({type(cause).__name__})", transient=True)
    what = f"{type(cause).__name__}: {cause}" if cause is not None else str(error)
    return StepError(f"{step}: {what}"[:300], transient=error.retryable)


def _setting(settings: Settings, name: str) -> str | None:
    value = getattr(settings, name)
    # An empty value is unset: an empty token must never be sent as a credential.
    return value.strip() or None if isinstance(value, str) else None


def endpoint(
    settings: Settings, step: str, url_setting: str, token_setting: str, *, token_required: bool
) -> Endpoint:
    url = _setting(settings, url_setting)
    if url is None:
        raise EnrichmentConfigError(
            f"enrichment step {step!r} needs {env_name(url_setting)} "
            f"(or leave {step!r} out of {STEPS_SETTING})"
        )
    if not url.startswith(("http://", "https://")):
        raise EnrichmentConfigError(f"{env_name(url_setting)} must be an http(s) URL")
    token = _setting(settings, token_setting)
    if token is None and token_required:
        raise EnrichmentConfigError(f"enrichment step {step!r} needs {env_name(token_setting)}")
    return Endpoint(step, url, token, url_setting, token_setting)


# --- the built-in steps ---------------------------------------------------------------------

DOCUMENT_SEPARATORS = re.compile(r"[\s./-]")


def _needs_document(step: str, result: Result) -> str:
    if result.document is None:
        raise StepError(
            f"{step}: no document to work with: list 'identity' before {step!r} in {STEPS_SETTING}",
            transient=False,
        )
    return result.document


class IdentityLookup:
    """`POST {url}/v1/identity/lookup` with `{"email": …}`, then with `{"phone": …}`; each
    answers `{"document": "…"}` or `{"document": null}`.

    Two different documents stop the run `not_same_person` rather than enrich from either:
    one of the contacts belongs to someone else and nothing says which, so posting either
    person's data to the lead could show a stranger's data to the seller. One document
    alone is the only person in sight: the lead is enriched from it, marked as such."""

    name = "identity"

    def __init__(self, endpoint: Endpoint, http: ApiClient) -> None:
        self.endpoint = endpoint
        self.http = http

    @classmethod
    def build(cls, settings: Settings, http: ApiClient) -> IdentityLookup:
        found = endpoint(
            settings,
            cls.name,
            "enrichment_identity_url",
            "enrichment_identity_token",
            token_required=False,
        )
        return cls(found, http)

    def run(self, lead: Lead, result: Result) -> None:
        by_email = self._document("email", lead.email)
        by_phone = self._document("phone", lead.phone)
        found = f"{_found('e-mail', lead.email, by_email)}; {_found('phone', lead.phone, by_phone)}"
        if by_email is not None and by_email == by_phone:
            result.document = by_email
        elif by_email is not None and by_phone is not None:
            result.stop(
                EnrichmentStatus.NOT_SAME_PERSON,
                "the e-mail and the phone resolve to different documents",
            )
        elif by_email is None and by_phone is None:
            result.stop(EnrichmentStatus.UNMATCHED, found)
        else:
            result.document = by_email or by_phone
            result.status = EnrichmentStatus.ENRICHED_SINGLE_SOURCE
            result.single_source = "e-mail" if by_email is not None else "phone"
            result.reason = f"{NOT_CONFIRMED}: {found}"

    def _document(self, kind: str, value: str | None) -> str | None:
        if value is None:
            return None
        answer = self.endpoint.post(self.http, "/v1/identity/lookup", {kind: value})
        if not isinstance(answer, dict) or "document" not in answer:
            raise StepError(f"{self.name}: answered without a 'document'", transient=False)
        document = answer["document"]
        if document is None:
            return None
        normalised = DOCUMENT_SEPARATORS.sub("", document) if isinstance(document, str) else ""
        if not 0 < len(normalised) <= 32:
            raise StepError(f"{self.name}: answered a 'document' that is not one", transient=False)
        return normalised


def _found(label: str, value: str | None, document: str | None) -> str:
    if value is None:
        return f"no valid {label} to look up"
    return f"the {label} resolves to a document" if document else f"the {label} resolves to none"


class PersonEnrichment:
    """`POST {url}/v1/people/lookup` with `{"document": …}`; answers `{"person": {…}}` or
    `{"person": null}` (then the lead keeps its status, without data, and says why)."""

    name = "person"

    def __init__(self, endpoint: Endpoint, http: ApiClient) -> None:
        self.endpoint = endpoint
        self.http = http

    @classmethod
    def build(cls, settings: Settings, http: ApiClient) -> PersonEnrichment:
        found = endpoint(
            settings,
            cls.name,
            "enrichment_person_url",
            "enrichment_person_token",
            token_required=False,
        )
        return cls(found, http)

    def run(self, lead: Lead, result: Result) -> None:
        document = _needs_document(self.name, result)
        answer = self.endpoint.post(self.http, "/v1/people/lookup", {"document": document})
        if not isinstance(answer, dict) or "person" not in answer:
            raise StepError(f"{self.name}: answered without a 'person'", transient=False)
        person = answer["person"]
        if isinstance(person, dict):
            result.data = person
        elif person is None:
            result.add_reason(NO_PERSON_DATA)
        else:
            raise StepError(
                f"{self.name}: answered a 'person' that is not an object", transient=False
            )


class LeadMessage:
    """Posts the result to the lead through the C2S API (bearer token). The path is a setting
    (`HOOKYARD_C2S_MESSAGE_PATH`): C2S's message endpoint is not confirmed publicly. The
    `Idempotency-Key` is the same for every retry of one contact, for an API that honours it.
    A single-source result's message says the contacts were not confirmed to be one person."""

    name = "message"

    def __init__(self, endpoint: Endpoint, path: str, http: ApiClient) -> None:
        self.endpoint = endpoint
        self.path = path
        self.http = http

    @classmethod
    def build(cls, settings: Settings, http: ApiClient) -> LeadMessage:
        found = endpoint(settings, cls.name, "c2s_api_url", "c2s_api_token", token_required=True)
        path = settings.c2s_message_path
        try:
            ok = path.startswith("/") and path.format(lead_id="x") != path.format(lead_id="y")
        except (KeyError, IndexError, ValueError):
            ok = False
        if not ok:
            raise EnrichmentConfigError(
                f"{env_name('c2s_message_path')} must start with / and contain {{lead_id}}, "
                "and nothing else in braces"
            )
        return cls(found, path, http)

    def run(self, lead: Lead, result: Result) -> None:
        document = _needs_document(self.name, result)
        self.endpoint.post(
            self.http,
            self.path.format(lead_id=quote(lead.c2s_lead_id, safe="")),
            {"message": message_text(document, result.data, single_source=_single(result))},
            headers={"idempotency-key": f"hookyard-enrichment-{lead.id}-{lead.contact_hash[:16]}"},
        )


def _single(result: Result) -> str | None:
    """Which contact alone found the person, when the result is single-source ("one
    contact" when a custom step set the status without saying which)."""
    if result.status is not EnrichmentStatus.ENRICHED_SINGLE_SOURCE:
        return None
    return result.single_source or "one contact"


def message_text(
    document: str,
    data: Mapping[str, Any] | None,
    max_fields: int = 20,
    *,
    single_source: str | None = None,
) -> str:
    """The message a seller reads on the lead: the document and the person's plain fields.
    With `single_source` (the contact that alone resolved), it first says that the e-mail
    and the phone were not confirmed to be the same person."""
    if single_source is None:
        lines = ["Hookyard enrichment: the lead's e-mail and phone belong to the same person."]
    else:
        lines = [
            f"Hookyard enrichment: NOT CONFIRMED: {NOT_CONFIRMED}.",
            f"Found by the lead's {single_source} only; check before relying on it.",
        ]
    lines.append(f"Document: {document}")
    fields = [
        (key, value)
        for key, value in (data or {}).items()
        if key != "document" and isinstance(value, str | int | float | bool)
    ]
    for key, value in fields[:max_fields]:
        lines.append(f"{key.replace('_', ' ').capitalize()}: {value}")
    return "\n".join(lines)


# --- configuration --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuiltIn:
    build: StepFactory
    url_setting: str


BUILT_IN: dict[str, BuiltIn] = {
    IdentityLookup.name: BuiltIn(IdentityLookup.build, "enrichment_identity_url"),
    PersonEnrichment.name: BuiltIn(PersonEnrichment.build, "enrichment_person_url"),
    LeadMessage.name: BuiltIn(LeadMessage.build, "c2s_api_url"),
}


def step_names(settings: Settings) -> list[str]:
    return [name.strip() for name in settings.enrichment_steps.split(",") if name.strip()]


def is_configured(settings: Settings) -> bool:
    """Enrichment is on once a listed step could run: a custom step, or a built-in one whose
    URL is set. (Off by default: no URL is set.)"""
    return any(
        name not in BUILT_IN or _setting(settings, BUILT_IN[name].url_setting) is not None
        for name in step_names(settings)
    )


def load_steps(settings: Settings, http: ApiClient) -> list[Step]:
    steps = [load_step(name, settings, http) for name in step_names(settings)]
    if not steps:
        raise EnrichmentConfigError(f"{STEPS_SETTING} lists no step")
    return steps


def load_step(name: str, settings: Settings, http: ApiClient) -> Step:
    if name in BUILT_IN:
        return BUILT_IN[name].build(settings, http)
    module_name, colon, attribute = name.partition(":")
    if not colon or not module_name or not attribute:
        raise EnrichmentConfigError(
            f"unknown enrichment step {name!r} in {STEPS_SETTING}: use "
            f"{', '.join(BUILT_IN)} or 'package.module:factory'"
        )
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise EnrichmentConfigError(
            f"cannot load enrichment step {name!r} from {STEPS_SETTING}: {exc}"
        ) from exc
    step = factory(settings, http)
    if not isinstance(step, Step):
        raise EnrichmentConfigError(
            f"{name!r} in {STEPS_SETTING} did not return a step (a `name` and `run(lead, result)`)"
        )
    return step
