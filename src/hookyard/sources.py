"""Sources: which provider answers which path, for which tenant, with which secrets.

Either a TOML file (`HOOKYARD_SOURCES`), or — without one — the demo sources of DESIGN.md,
whose secrets come from `HOOKYARD_*` variables or are generated once and kept in a local
file so that `hookyard simulate` can sign with them.
"""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hookyard.config import ConfigError, Settings
from hookyard.destinations.config import Destinations, build_destinations
from hookyard.private_file import UnsafeFile, read_private, write_private
from hookyard.providers.base import Source
from hookyard.providers.registry import ADAPTERS
from hookyard.providers.signing import standard_webhooks_secret

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class SourcesError(ConfigError):
    pass


def _expand(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _ENV_REF.sub(lambda m: env.get(m.group(1), ""), value)
    if isinstance(value, list):
        return [_expand(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, env) for k, v in value.items()}
    return value


def build_source(raw: Mapping[str, Any]) -> Source:
    provider = raw.get("provider")
    adapter_cls = ADAPTERS.get(str(provider))
    if adapter_cls is None:
        raise SourcesError(
            f"source {raw.get('name')!r}: unknown provider {provider!r} "
            f"(one of {', '.join(sorted(ADAPTERS))})"
        )
    values = dict(raw)
    values.setdefault("path", f"/webhooks/in/{values.get('name')}")
    try:
        config = adapter_cls.config_model.model_validate(values)
    except ValidationError as exc:
        raise SourcesError(f"source {raw.get('name')!r}: {exc}") from None
    if not config.path.startswith("/"):
        raise SourcesError(f"source {config.name!r}: path must start with '/'")
    source = Source(config, adapter_cls(config))
    if not source.adapter.verifiers and not config.allow_unauthenticated:
        raise SourcesError(
            f"source {config.name!r} would accept anyone's requests: give it a token"
            " (TCR: `token`, sent as ?token= or a basic-auth password) or `allowed_ips`,"
            " or say `allow_unauthenticated = true`"
        )
    return source


@dataclass(frozen=True)
class SourceSet:
    sources: tuple[Source, ...]
    generated: Mapping[str, str]  # demo secrets generated on this start (to print once)
    # `[[destination]]`, checked against the sources
    destinations: Destinations = field(default_factory=Destinations)

    def __post_init__(self) -> None:
        seen_names: set[str] = set()
        seen_paths: set[str] = set()
        for source in self.sources:
            if source.name in seen_names:
                raise SourcesError(f"two sources are named {source.name!r}")
            if source.path in seen_paths:
                raise SourcesError(f"two sources use the path {source.path!r}")
            seen_names.add(source.name)
            seen_paths.add(source.path)

    def by_path(self) -> dict[str, Source]:
        return {s.path: s for s in self.sources}

    def by_name(self) -> dict[str, Source]:
        return {s.name: s for s in self.sources}


def load_sources_file(path: Path, env: Mapping[str, str] | None = None) -> SourceSet:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SourcesError(f"cannot read sources file {path}: {exc}") from None
    entries = data.get("source", [])
    if not isinstance(entries, list) or not entries:
        raise SourcesError(f"{path}: declare sources as [[source]] tables")
    targets = data.get("destination", [])
    if not isinstance(targets, list):
        raise SourcesError(f"{path}: declare destinations as [[destination]] tables")
    env = os.environ if env is None else env
    sources = tuple(build_source(_expand(e, env)) for e in entries)
    destinations = build_destinations([_expand(t, env) for t in targets], (s.name for s in sources))
    return SourceSet(sources, {}, destinations)


# Demo secrets: (settings attribute, environment variable, kind of value to generate).
DEMO_SECRETS: tuple[tuple[str, str, str], ...] = (
    ("hubspot_client_secret", "HOOKYARD_HUBSPOT_CLIENT_SECRET", "token"),
    ("meta_app_secret", "HOOKYARD_META_APP_SECRET", "token"),
    ("meta_verify_token", "HOOKYARD_META_VERIFY_TOKEN", "token"),
    ("c2s_webhook_token", "HOOKYARD_C2S_WEBHOOK_TOKEN", "token"),
    ("generic_secret", "HOOKYARD_GENERIC_SECRET", "whsec"),
    # TCR signs nothing: a token in the subscribed URL is what authenticates it.
    ("tcr_token", "HOOKYARD_TCR_TOKEN", "token"),
    ("admin_token", "HOOKYARD_ADMIN_TOKEN", "token"),
    ("session_secret", "HOOKYARD_SESSION_SECRET", "token"),
)


def _generate(kind: str) -> str:
    if kind == "whsec":
        return standard_webhooks_secret()
    return "demo-" + secrets.token_urlsafe(24)


def _unsafe(exc: UnsafeFile) -> SourcesError:
    return SourcesError(
        f"demo secrets file: {exc}; point HOOKYARD_DEMO_SECRETS_FILE at a regular file of"
        " this user (it is written with mode 0600)"
    )


def read_env_file(path: Path) -> dict[str, str]:
    """The `NAME=value` lines of the demo secrets file (private_file.py's checks apply)."""
    try:
        text = read_private(path)
    except UnsafeFile as exc:
        raise _unsafe(exc) from None
    values: dict[str, str] = {}
    for line in (text or "").splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#"):
            values[name.strip()] = value.strip()
    return values


def demo_secrets(settings: Settings, *, create: bool) -> tuple[dict[str, str], dict[str, str]]:
    """Every demo secret (by variable name), and those generated now.

    A variable that is set wins; otherwise the value kept in the demo secrets file; otherwise
    (with `create`) a new random value, written to that file with mode 0600 (never through a
    link; a looser mode is fixed: see private_file.py).
    """
    kept = read_env_file(settings.demo_secrets_file)
    values: dict[str, str] = {}
    stored: dict[str, str] = {}
    generated: dict[str, str] = {}
    for attr, var, kind in DEMO_SECRETS:
        configured = getattr(settings, attr)
        if configured is not None:
            values[var] = configured
        elif var in kept:
            values[var] = stored[var] = kept[var]
        elif create:
            values[var] = stored[var] = generated[var] = _generate(kind)
    if generated:
        text = "# hookyard demo secrets, generated; not for production\n" + "".join(
            f"{var}={value}\n" for var, value in stored.items()
        )
        try:
            write_private(settings.demo_secrets_file, text)
        except UnsafeFile as exc:
            raise _unsafe(exc) from None
    return values, generated


def demo_source_entries(
    secrets_by_var: Mapping[str, str], tcr_token: str | None
) -> list[dict[str, Any]]:
    tcr: dict[str, Any] = {"provider": "tcr"}
    if tcr_token is not None:
        tcr["token"] = tcr_token
    return [
        {
            "name": "hubspot",
            "provider": "hubspot",
            "path": "/webhooks/hubspot/company",
            "client_secret": secrets_by_var.get("HOOKYARD_HUBSPOT_CLIENT_SECRET", ""),
        },
        {
            "name": "meta",
            "provider": "meta",
            "path": "/api/v1/whatsapp/webhook",
            "app_secret": secrets_by_var.get("HOOKYARD_META_APP_SECRET", ""),
            "verify_token": secrets_by_var.get("HOOKYARD_META_VERIFY_TOKEN", ""),
        },
        {
            "name": "c2s",
            "provider": "c2s",
            "path": "/api/v1/webhooks/c2s",
            "token": secrets_by_var.get("HOOKYARD_C2S_WEBHOOK_TOKEN", ""),
        },
        {**tcr, "name": "tcr-brands", "path": "/webhooks/tcr/brands"},
        {**tcr, "name": "tcr-campaigns", "path": "/webhooks/tcr/campaigns"},
        {**tcr, "name": "tcr-vetting", "path": "/webhooks/tcr/vetting"},
        {
            "name": "demo",
            "provider": "generic",
            "path": "/webhooks/in/demo",
            "scheme": "standard",
            "secret": secrets_by_var.get("HOOKYARD_GENERIC_SECRET", ""),
        },
    ]


def load_sources(settings: Settings, *, create_secrets: bool = True) -> SourceSet:
    if settings.sources is not None:
        return load_sources_file(settings.sources)
    values, generated = demo_secrets(settings, create=create_secrets)
    entries = demo_source_entries(values, values.get("HOOKYARD_TCR_TOKEN"))
    return SourceSet(tuple(build_source(e) for e in entries), generated)


def admin_token(settings: Settings) -> str | None:
    """The management API's bearer token: the variable, else the demo secrets file."""
    if settings.admin_token is not None:
        return settings.admin_token
    return read_env_file(settings.demo_secrets_file).get("HOOKYARD_ADMIN_TOKEN")


def session_secret(settings: Settings) -> str | None:
    """What signs session tokens: the variable, else the demo secrets file."""
    if settings.session_secret is not None:
        return settings.session_secret
    return read_env_file(settings.demo_secrets_file).get("HOOKYARD_SESSION_SECRET")


def describe(sources: Iterable[Source]) -> list[dict[str, str | None]]:
    return [
        {"name": s.name, "provider": s.config.provider, "path": s.path, "tenant": s.config.tenant}
        for s in sources
    ]
