"""Helpers for the WhatsApp campaign tests: Meta sources owned by tenants, and Meta's signed
template status webhooks (hookyard.testing.simulate, signed as Meta signs them)."""

from __future__ import annotations

from hookyard.testing.simulate import Delivery, meta_delivery, meta_envelope, meta_status_change
from tests.support import SECRETS, SOURCES_TOML

ACME_WABA = "111000111"
GLOBEX_WABA = "222000222"
META_PATH = "/api/v1/whatsapp/webhook"
GLOBEX_META_PATH = "/api/v1/whatsapp/globex"

# The Meta source belongs to tenant "acme"; a second one, on its own path, to "globex".
TENANT_SOURCES = SOURCES_TOML.replace(
    'name = "meta"\nprovider = "meta"\n', 'name = "meta"\nprovider = "meta"\ntenant = "acme"\n'
) + (
    f'\n[[source]]\nname = "meta-globex"\nprovider = "meta"\ntenant = "globex"\n'
    f'path = "{GLOBEX_META_PATH}"\napp_secret = "{SECRETS["meta_app"]}"\n'
    f'verify_token = "{SECRETS["meta_verify"]}"\n'
)


def template_status(
    base: str,
    template: str,
    name: str,
    event: str,
    sent: int,
    *,
    waba: str = ACME_WABA,
    path: str = META_PATH,
) -> Delivery:
    """Meta's `message_template_status_update` for `template`, signed with the app secret,
    posted to `base` + `path`; `sent` is the entry's time (orders the events)."""
    change = meta_status_change(template, name, "en_US", event)
    envelope = meta_envelope([change], waba_id=waba, sent=sent)
    return meta_delivery(SECRETS["meta_app"], base + path, envelope)
