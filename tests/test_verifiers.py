"""Contract tests for every request verifier, inherited the way django-anymail does it.

`VerifierContract` holds the security tests every verifier must pass (good signature, wrong
secret, missing credentials, an empty secret); `SignsBodyContract` adds "a body changed by one
byte fails", `SignsTimestampContract` the stale-timestamp tests. Each verifier's test class
inherits the ones that apply and fills in only "make a verifier" and "sign this request".
Where the provider publishes code, the signing in these classes is the provider's own
(`standardwebhooks`, HubSpot's SDK), so our verifiers are proven against it, not against
`hookyard.providers.signing`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import ClassVar
from urllib.parse import parse_qsl, urlsplit

import pytest
import standardwebhooks.webhooks as swh
from fastapi.testclient import TestClient
from hubspot.utils.signature import Signature as HubSpotSDK

from hookyard.app import create_app
from hookyard.config import Settings
from hookyard.providers import signing
from hookyard.providers.base import Verifier, WebhookRequest
from hookyard.providers.verify import (
    HmacHeader,
    HubSpotSignature,
    IpAllowList,
    MetaSignature,
    SharedToken,
    StandardWebhooks,
)
from hookyard.runtime import Runtime
from hookyard.sources import SourceSet
from hookyard.testing.simulate import build_delivery
from tests.conftest import SECRETS
from tests.support import hubspot_decoded

NOW = 1_763_800_000.0  # the verifiers' clock in these tests: no sleeping, no flakiness
URL = "https://hooks.example.com/webhooks/in/contract?tenant=acme"
BODY = b'{"type":"invoice.paid","id":"evt_1","data":{"amount":1200,"note":"caf\xc3\xa9"}}'


def fixed_clock(at: float = NOW) -> Callable[[], float]:
    return lambda: at


AT_NOW = fixed_clock()


def make_request(
    body: bytes = BODY,
    *,
    url: str = URL,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    client_ip: str | None = "198.51.100.7",
) -> WebhookRequest:
    """A request as the ingress builds it: lower-case header names, query parsed from the URL."""
    query = urlsplit(url).query
    return WebhookRequest(
        method=method,
        url=url,
        path=urlsplit(url).path,
        query=dict(parse_qsl(query)) if query else {},
        headers={"content-type": "application/json", **(headers or {})},
        body=body,
        client_ip=client_ip,
    )


def with_headers(request: WebhookRequest, **headers: str) -> WebhookRequest:
    return replace(request, headers={**request.headers, **headers})


def without_header(request: WebhookRequest, name: str) -> WebhookRequest:
    return replace(request, headers={k: v for k, v in request.headers.items() if k != name})


def flip(body: bytes, index: int) -> bytes:
    return body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]


# Ways to change a body "by one byte", plus a re-serialisation that keeps the same JSON value:
# verifiers must check the raw bytes, never re-serialised JSON.
BODY_CHANGES: dict[str, Callable[[bytes], bytes]] = {
    "first byte flipped": lambda b: flip(b, 0),
    "middle byte flipped": lambda b: flip(b, len(b) // 2),
    "last byte flipped": lambda b: flip(b, len(b) - 1),
    "one byte appended": lambda b: b + b" ",
    "last byte dropped": lambda b: b[:-1],
    "one byte inserted": lambda b: b[:1] + b" " + b[1:],
    "same JSON re-serialised": lambda b: b.replace(b":", b": "),
}


class VerifierContract:
    """What every verifier promises. Not collected itself (no `Test` prefix).

    Schemes that sign the body stack `SignsBodyContract` on top, those that also sign a
    timestamp `SignsTimestampContract`; a token or an allow-list protects neither (TLS does).
    """

    secret: ClassVar[str]
    wrong_secret: ClassVar[str]
    # Configured values that must disable the verifier (never "valid", whatever is sent).
    empty_secrets: ClassVar[tuple[str, ...]] = ("",)
    # The word the reason uses for a disabled source (None: the verifier has no such notion).
    disabled_word: ClassVar[str | None] = "disabled"
    # Headers that carry the credentials; a request missing any one of them must fail.
    credential_headers: ClassVar[tuple[str, ...]] = ()

    def make_verifier(self, secret: str, clock: Callable[[], float] = AT_NOW) -> Verifier:
        raise NotImplementedError

    def sign(self, request: WebhookRequest, secret: str, at: float = NOW) -> WebhookRequest:
        raise NotImplementedError

    def sign_with_empty_key(self, request: WebhookRequest) -> WebhookRequest:
        """Signed as an attacker would against a source whose key is empty."""
        return self.sign(request, "")

    def without_credentials(self, request: WebhookRequest) -> Iterator[WebhookRequest]:
        for name in self.credential_headers:
            assert name in request.headers, f"{name} was not set by sign()"
            yield without_header(request, name)

    # -- the contract -----------------------------------------------------------------

    def test_good_signature_passes(self) -> None:
        signed = self.sign(make_request(), self.secret)
        assert self.make_verifier(self.secret).verify(signed) is None

    def test_empty_body_signed_passes(self) -> None:
        signed = self.sign(make_request(b""), self.secret)
        assert self.make_verifier(self.secret).verify(signed) is None

    def test_signed_with_the_wrong_secret_is_rejected(self) -> None:
        signed = self.sign(make_request(), self.wrong_secret)
        reason = self.make_verifier(self.secret).verify(signed)
        assert reason is not None and reason.strip()

    def test_verifier_with_another_secret_rejects(self) -> None:
        signed = self.sign(make_request(), self.secret)
        assert self.make_verifier(self.wrong_secret).verify(signed) is not None

    def test_missing_credentials_are_rejected(self) -> None:
        signed = self.sign(make_request(), self.secret)
        verifier = self.make_verifier(self.secret)
        variants = list(self.without_credentials(signed))
        assert variants, "the contract needs at least one way to drop the credentials"
        for variant in variants:
            assert verifier.verify(variant) is not None, variant

    def test_unsigned_request_is_rejected(self) -> None:
        assert self.make_verifier(self.secret).verify(make_request(client_ip=None)) is not None

    def test_empty_secret_disables_the_verifier(self) -> None:
        for empty in self.empty_secrets:
            verifier = self.make_verifier(empty)
            for request in (
                self.sign_with_empty_key(make_request()),
                make_request(),
                self.sign(make_request(), self.secret),
            ):
                reason = verifier.verify(request)
                assert reason is not None, f"configured {empty!r} accepted {request.headers}"
                if self.disabled_word is not None:
                    assert self.disabled_word in reason, (empty, reason)

    def test_while_a_secret_is_rotated_either_one_passes(self) -> None:
        # `client_secret = ["new", "old"]`: both verify until the old one is dropped.
        rotating = self.make_verifier([self.wrong_secret, self.secret])  # type: ignore[arg-type]
        assert rotating.verify(self.sign(make_request(), self.secret)) is None
        assert rotating.verify(self.sign(make_request(), self.wrong_secret)) is None

    def test_an_empty_secret_in_a_rotation_opens_nothing(self) -> None:
        for empty in self.empty_secrets:
            verifier = self.make_verifier([empty, self.secret])  # type: ignore[arg-type]
            assert verifier.verify(self.sign_with_empty_key(make_request())) is not None
            assert verifier.verify(make_request()) is not None
            assert verifier.verify(self.sign(make_request(), self.secret)) is None

    def test_reasons_never_echo_the_secret_or_the_expected_signature(self) -> None:
        good = self.sign(make_request(), self.secret)
        forged = self.sign(make_request(), self.wrong_secret)
        reason = self.make_verifier(self.secret).verify(forged)
        assert reason is not None
        assert self.secret not in reason
        plain = make_request().headers
        for name, value in good.headers.items():
            if name not in plain and len(value) >= 16:  # a signature or token, not "v2"
                assert value not in reason


class SignsBodyContract(VerifierContract):
    """For schemes whose signature covers the raw body."""

    @pytest.mark.parametrize("change", list(BODY_CHANGES))
    def test_body_changed_by_one_byte_is_rejected(self, change: str) -> None:
        signed = self.sign(make_request(), self.secret)
        tampered = replace(signed, body=BODY_CHANGES[change](signed.body))
        assert tampered.body != signed.body
        assert self.make_verifier(self.secret).verify(tampered) is not None


class SignsTimestampContract(SignsBodyContract):
    """For schemes that sign a timestamp and refuse it outside a window (`clock` is injected)."""

    window_seconds: ClassVar[int]

    @pytest.mark.parametrize("side", [-1, +1], ids=["too old", "from the future"])
    def test_timestamp_outside_the_window_is_rejected(self, side: int) -> None:
        signed_at = NOW + side * (self.window_seconds + 2)
        signed = self.sign(make_request(), self.secret, at=signed_at)
        assert self.make_verifier(self.secret).verify(signed) is not None
        # The same request passes for a clock at its signing time: only its age failed.
        assert self.make_verifier(self.secret, fixed_clock(signed_at)).verify(signed) is None

    def test_timestamp_inside_the_window_passes(self) -> None:
        for offset in (-self.window_seconds + 2, -1, 0, self.window_seconds - 2):
            signed = self.sign(make_request(), self.secret, at=NOW + offset)
            assert self.make_verifier(self.secret).verify(signed) is None, offset

    def test_stale_timestamp_is_rejected_however_old(self) -> None:
        for age in (self.window_seconds + 60, 86_400, 365 * 86_400, NOW - 1):
            signed = self.sign(make_request(), self.secret, at=NOW - age)
            assert self.make_verifier(self.secret).verify(signed) is not None, age


# -- Standard Webhooks --------------------------------------------------------------------


def _whsec(raw: bytes) -> str:
    return "whsec_" + base64.b64encode(raw).decode()


def _empty_key_signature(msg_id: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(b"", f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class TestStandardWebhooks(SignsTimestampContract):
    secret = SECRETS["generic"]
    wrong_secret = _whsec(b"another-endpoint-secret-0123456")
    # "whsec_" alone is a configured prefix with an unset variable behind it: an empty key.
    empty_secrets = ("", "whsec_")
    window_seconds = 300
    credential_headers = ("webhook-id", "webhook-timestamp", "webhook-signature")
    msg_id = "msg_2mJ5dCqM1xJbqU0yZ"

    def make_verifier(self, secret: str, clock: Callable[[], float] = AT_NOW) -> Verifier:
        return StandardWebhooks(secret, setting="secret of source 'contract'", clock=clock)

    def sign(self, request: WebhookRequest, secret: str, at: float = NOW) -> WebhookRequest:
        # The reference implementation signs; it refuses an empty key, which we sign by hand.
        key = base64.b64decode(secret.removeprefix("whsec_"))
        if key:
            stamp = datetime.fromtimestamp(at, UTC)
            signature = swh.Webhook(secret).sign(self.msg_id, stamp, request.body.decode())
        else:
            signature = _empty_key_signature(self.msg_id, str(int(at)), request.body)
        return with_headers(
            request,
            **{
                "webhook-id": self.msg_id,
                "webhook-timestamp": str(int(at)),
                "webhook-signature": signature,
            },
        )

    def test_the_specifications_test_vector(self) -> None:
        request = make_request(
            b'{"test": 2432232314}',
            headers={
                "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
                "webhook-timestamp": "1614265330",
                "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            },
        )
        secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        assert StandardWebhooks(secret, clock=fixed_clock(1614265330)).verify(request) is None

    def test_our_signer_matches_the_reference(self) -> None:
        for body in (b"", BODY, b'{"a":[1,2,{"b":null}]}'):
            ours = signing.standard_webhooks_signature(self.secret, self.msg_id, "1700000000", body)
            theirs = swh.Webhook(self.secret).sign(
                self.msg_id, datetime.fromtimestamp(1700000000, UTC), body.decode()
            )
            assert ours == theirs

    def test_the_reference_verifies_what_the_simulator_sends(self, sources: SourceSet) -> None:
        # The reference checks against the real clock, so this uses a fresh delivery.
        source = sources.by_name()["demo"]
        d = build_delivery(source, None, "http://testserver", 3)
        swh.Webhook(SECRETS["generic"]).verify(d.body, d.headers, json_parse=False)  # or raises
        assert (
            StandardWebhooks(SECRETS["generic"]).verify(make_request(d.body, headers=d.headers))
            is None
        )

    def test_secret_without_the_prefix_is_the_same_key(self) -> None:
        signed = self.sign(make_request(), self.secret)
        bare = self.secret.removeprefix("whsec_")
        assert self.make_verifier(bare).verify(signed) is None

    def test_one_matching_signature_among_several_passes(self) -> None:
        # Key rotation: the sender signs with the old and the new key.
        signed = self.sign(make_request(), self.secret)
        old = self.sign(make_request(), self.wrong_secret).headers["webhook-signature"]
        both = f"{old} {signed.headers['webhook-signature']}"
        assert (
            self.make_verifier(self.secret).verify(
                with_headers(signed, **{"webhook-signature": both})
            )
            is None
        )

    def test_only_v1_signatures_count(self) -> None:
        signed = self.sign(make_request(), self.secret)
        value = signed.headers["webhook-signature"].removeprefix("v1,")
        for header in (f"v2,{value}", f"v1a,{value}", value, f"v1a,{value} v1"):
            assert (
                self.make_verifier(self.secret).verify(
                    with_headers(signed, **{"webhook-signature": header})
                )
                is not None
            ), header

    def test_the_message_id_is_signed(self) -> None:
        signed = self.sign(make_request(), self.secret)
        replayed = with_headers(signed, **{"webhook-id": "msg_another"})
        assert self.make_verifier(self.secret).verify(replayed) is not None

    @pytest.mark.parametrize("stamp", ["", "abc", "1763800000.5", "0x691f3a00", "1e9"])
    def test_timestamp_that_is_not_an_integer_is_rejected(self, stamp: str) -> None:
        signed = self.sign(make_request(), self.secret)
        reason = self.make_verifier(self.secret).verify(
            with_headers(signed, **{"webhook-timestamp": stamp})
        )
        assert reason is not None

    @pytest.mark.parametrize("digits", [20, 400, 4000, 5000])
    def test_huge_timestamp_is_a_reason_not_a_crash(self, digits: int) -> None:
        # An attacker controls this header; a verifier answers with a reason, never raises.
        signed = self.sign(make_request(), self.secret)
        huge = with_headers(signed, **{"webhook-timestamp": "9" * digits})
        assert self.make_verifier(self.secret).verify(huge) is not None

    @pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_=", "whsec_abc"])
    def test_secret_that_is_not_base64_disables_and_names_the_setting(self, secret: str) -> None:
        reason = self.make_verifier(secret).verify(self.sign(make_request(), self.secret))
        assert reason is not None and "secret of source 'contract'" in reason


# -- HMAC of the body in one header ------------------------------------------------------


class TestHmacHeaderHexWithPrefix(SignsBodyContract):
    secret = SECRETS["hmac"]
    wrong_secret = "another-hmac-secret"
    credential_headers = ("x-signature",)

    def make_verifier(self, secret: str, clock: Callable[[], float] = AT_NOW) -> Verifier:
        return HmacHeader(secret, "x-signature", "sha256=", "hex", "secret of source 'signed'")

    def sign(self, request: WebhookRequest, secret: str, at: float = NOW) -> WebhookRequest:
        digest = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
        return with_headers(request, **{"x-signature": "sha256=" + digest})

    def test_signature_without_its_prefix_is_rejected(self) -> None:
        signed = self.sign(make_request(), self.secret)
        bare = signed.headers["x-signature"].removeprefix("sha256=")
        assert (
            self.make_verifier(self.secret).verify(with_headers(signed, **{"x-signature": bare}))
            is not None
        )

    def test_disabled_reason_names_the_setting(self) -> None:
        reason = self.make_verifier("").verify(self.sign(make_request(), self.secret))
        assert reason is not None and "secret of source 'signed'" in reason


class TestHmacHeaderBase64(SignsBodyContract):
    secret = "base64-hmac-secret"
    wrong_secret = "another-base64-hmac-secret"
    credential_headers = ("x-body-signature",)

    def make_verifier(self, secret: str, clock: Callable[[], float] = AT_NOW) -> Verifier:
        return HmacHeader(secret, "x-body-signature", encoding="base64")

    def sign(self, request: WebhookRequest, secret: str, at: float = NOW) -> WebhookRequest:
        digest = hmac.new(secret.encode(), request.body, hashlib.sha256).digest()
        return with_headers(request, **{"x-body-signature": base64.b64encode(digest).decode()})

    def test_hex_of_the_right_digest_is_rejected(self) -> None:
        digest = hmac.new(self.secret.encode(), BODY, hashlib.sha256).hexdigest()
        request = make_request(headers={"x-body-signature": digest})
        assert self.make_verifier(self.secret).verify(request) is not None


# -- shared tokens ---------------------------------------------------------------------------


class SharedTokenContract(VerifierContract):
    secret = SECRETS["token"]
    wrong_secret = "not-the-token"


class TestSharedTokenInHeader(SharedTokenContract):
    credential_headers = ("x-webhook-token",)

    def make_verifier(self, secret: str, clock: Callable[[], float] = AT_NOW) -> Verifier:
        return SharedToken(secret, header="x-webhook-token", setting="token of source 'c2s'")

    def sign(self, request: WebhookRequest, secret: str, at: float = NOW) -> WebhookRequest:
        return with_headers(request, **{"x-webhook-token": secret})

    def test_token_in_another_header_is_rejected(self) -> None:
        request = make_request(headers={"x-other-token": self.secret})
        assert self.make_verifier(self.secret).verify(request) is not None

    def test_prefix_or_extension_of_the_token_is_rejected(self) -> None:
        for sent in (self.secret[:-1], self.secret + "x", " " + self.secret, self.secret.upper()):
            request = make_request(headers={"x-webhook-token": sent})
            assert self.make_verifier(self.secret).verify(request) is not None, sent

    def test_disabled_reason_names_the_setting(self) -> None:
        reason = self.make_verifier("").verify(self.sign(make_request(), ""))
        assert reason is not None and "token of source 'c2s'" in reason


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class TestSharedTokenInBasicAuth(SharedTokenContract):
    credential_headers = ("authorization",)

    def make_verifier(self, secret: str, clock: Callable[[], float] = AT_NOW) -> Verifier:
        return SharedToken(secret, basic_auth=True)

    def sign(self, request: WebhookRequest, secret: str, at: float = NOW) -> WebhookRequest:
        return with_headers(request, authorization=_basic("tcr", secret))

    @pytest.mark.parametrize(
        "authorization",
        [
            "Bearer " + SECRETS["token"],
            "Basic " + SECRETS["token"],
            "Basic " + base64.b64encode(SECRETS["token"].encode()).decode(),  # no colon
            _basic(SECRETS["token"], "wrong"),  # the token as the user name
            "Basic !!!not-base64!!!",
            "Basic " + base64.b64encode(b"tcr:\xff\xfe").decode(),  # not UTF-8
            "Basic",
            "",
        ],
    )
    def test_malformed_or_misplaced_credentials_are_rejected(self, authorization: str) -> None:
        request = make_request(headers={"authorization": authorization})
        assert self.make_verifier(self.secret).verify(request) is not None

    def test_scheme_name_is_case_insensitive(self) -> None:
        value = _basic("tcr", self.secret).replace("Basic", "basic")
        assert (
            self.make_verifier(self.secret).verify(make_request(headers={"authorization": value}))
            is None
        )

    def test_password_may_contain_colons(self) -> None:
        verifier = self.make_verifier("pa:ss:word")
        assert verifier.verify(self.sign(make_request(), "pa:ss:word")) is None


class TestSharedTokenInQuery(SharedTokenContract):
    def make_verifier(self, secret: str, clock: Callable[[], float] = AT_NOW) -> Verifier:
        return SharedToken(secret, query_param="token")

    def sign(self, request: WebhookRequest, secret: str, at: float = NOW) -> WebhookRequest:
        url = (
            f"{request.url}&token={secret}"
            if "?" in request.url
            else f"{request.url}?token={secret}"
        )
        return make_request(request.body, url=url, headers=dict(request.headers))

    def without_credentials(self, request: WebhookRequest) -> Iterator[WebhookRequest]:
        yield make_request(request.body, url=URL, headers=dict(request.headers))

    def test_token_in_another_parameter_is_rejected(self) -> None:
        request = make_request(url=URL + "&tok=" + self.secret)
        assert self.make_verifier(self.secret).verify(request) is not None

    def test_percent_encoded_token_is_decoded(self) -> None:
        verifier = self.make_verifier("a b/c+d")
        assert verifier.verify(make_request(url=URL + "&token=a%20b%2Fc%2Bd")) is None
        assert verifier.verify(make_request(url=URL + "&token=a+b/c+d")) is not None

    def test_token_in_a_header_does_not_count(self) -> None:
        request = make_request(headers={"x-webhook-token": self.secret, "token": self.secret})
        assert self.make_verifier(self.secret).verify(request) is not None


# -- HubSpot --------------------------------------------------------------------------------


def hubspot_ms(at: float) -> str:
    return str(int(at * 1000))


class TestHubSpotV3(SignsTimestampContract):
    secret = SECRETS["hubspot"]
    wrong_secret = "another-hubspot-client-secret"
    window_seconds = 300
    credential_headers = ("x-hubspot-signature-v3", "x-hubspot-request-timestamp")

    def make_verifier(self, secret: str, clock: Callable[[], float] = AT_NOW) -> Verifier:
        return HubSpotSignature(secret, setting="client_secret of source 'hubspot'", clock=clock)

    def sign(self, request: WebhookRequest, secret: str, at: float = NOW) -> WebhookRequest:
        stamp = hubspot_ms(at)
        signature = HubSpotSDK.get_signature(
            secret,
            request.body.decode(),
            "v3",
            http_uri=hubspot_decoded(request.url),
            http_method=request.method,
            timestamp=stamp,
        )
        return with_headers(
            request,
            **{"x-hubspot-signature-v3": signature, "x-hubspot-request-timestamp": stamp},
        )

    @pytest.mark.parametrize(
        "url",
        [
            "https://hooks.example.com/webhooks/hubspot/company",
            "https://hooks.example.com/webhooks/hubspot/company?portalId=62515&appId=1160452",
            "https://hooks.example.com:8443/webhooks/hubspot/company?b=2&a=1",
            # Decoded by HubSpot before signing (its table) ...
            "https://hooks.example.com/webhooks/hubspot/company?next=https%3A%2F%2Fx.test%2Fa"
            "%3Fb%3Dc&who=ops%40acme.test&x=%21%24%27%28%29%2A%2C%3B",
            # ... in lower case too ...
            "https://hooks.example.com/webhooks/hubspot/company?next=https%3a%2f%2fx.test",
            # ... while the rest (%20, %3D, %26, %25) stays encoded.
            "https://hooks.example.com/webhooks/hubspot/company?q=a%20b%3Dc%26d&pct=100%25",
        ],
    )
    def test_full_url_with_query_and_encoded_characters(self, url: str) -> None:
        signed = self.sign(make_request(url=url), self.secret)
        assert self.make_verifier(self.secret).verify(signed) is None

    @pytest.mark.parametrize(
        "other_url",
        [
            "http://hooks.example.com/webhooks/in/contract?tenant=acme",  # scheme
            "https://evil.example.com/webhooks/in/contract?tenant=acme",  # host
            "https://hooks.example.com/webhooks/in/other?tenant=acme",  # path
            "https://hooks.example.com/webhooks/in/contract?tenant=globex",  # query
            "https://hooks.example.com/webhooks/in/contract",  # query dropped
        ],
    )
    def test_the_url_is_signed(self, other_url: str) -> None:
        signed = self.sign(make_request(), self.secret)
        moved = replace(signed, url=other_url)
        assert self.make_verifier(self.secret).verify(moved) is not None

    def test_the_method_is_signed(self) -> None:
        signed = self.sign(make_request(), self.secret)
        assert self.make_verifier(self.secret).verify(replace(signed, method="PUT")) is not None

    def test_the_timestamp_is_signed(self) -> None:
        signed = self.sign(make_request(), self.secret)
        later = with_headers(signed, **{"x-hubspot-request-timestamp": hubspot_ms(NOW + 1)})
        assert self.make_verifier(self.secret).verify(later) is not None

    def test_timestamp_in_seconds_instead_of_milliseconds_is_rejected(self) -> None:
        signed = self.sign(make_request(), self.secret)
        seconds = with_headers(signed, **{"x-hubspot-request-timestamp": str(int(NOW))})
        assert self.make_verifier(self.secret).verify(seconds) is not None

    @pytest.mark.parametrize("digits", [20, 400, 4000, 5000])
    def test_huge_timestamp_is_a_reason_not_a_crash(self, digits: int) -> None:
        signed = self.sign(make_request(), self.secret)
        huge = with_headers(signed, **{"x-hubspot-request-timestamp": "9" * digits})
        assert self.make_verifier(self.secret).verify(huge) is not None

    def test_v3_is_refused_when_the_source_does_not_accept_it(self) -> None:
        signed = self.sign(make_request(), self.secret)
        verifier = HubSpotSignature(self.secret, ("v2", "v1"), clock=fixed_clock())
        assert verifier.verify(signed) is not None

    def test_the_sdk_accepts_what_the_simulator_sends(self, sources: SourceSet) -> None:
        d = build_delivery(sources.by_name()["hubspot"], None, "https://hooks.example.com", 1)
        assert HubSpotSDK.is_valid(
            d.headers["x-hubspot-signature-v3"],
            SECRETS["hubspot"],
            d.body.decode(),
            http_uri=hubspot_decoded(d.url),
            http_method="POST",
            signature_version="v3",
            timestamp=d.headers["x-hubspot-request-timestamp"],
        )

    def test_disabled_reason_names_the_setting(self) -> None:
        reason = self.make_verifier("").verify(self.sign(make_request(), self.secret))
        assert reason is not None and "client_secret of source 'hubspot'" in reason


class TestHubSpotV2(SignsBodyContract):
    secret = SECRETS["hubspot"]
    wrong_secret = "another-hubspot-client-secret"
    credential_headers = ("x-hubspot-signature", "x-hubspot-signature-version")

    def make_verifier(self, secret: str, clock: Callable[[], float] = AT_NOW) -> Verifier:
        return HubSpotSignature(secret, ("v3", "v2", "v1"), clock=clock)  # opted in

    def sign(self, request: WebhookRequest, secret: str, at: float = NOW) -> WebhookRequest:
        signature = HubSpotSDK.get_signature(
            secret, request.body.decode(), "v2", http_uri=request.url, http_method=request.method
        )
        return with_headers(
            request,
            **{"x-hubspot-signature": signature, "x-hubspot-signature-version": "v2"},
        )

    def test_hubspots_documented_example(self) -> None:
        request = make_request(
            b"",
            url="https://www.example.com/webhook_uri",
            method="GET",
            headers={
                "x-hubspot-signature-version": "v2",
                "x-hubspot-signature": (
                    "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
                ),
            },
        )
        verifier = HubSpotSignature("yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy", ("v2", "v1"))
        assert verifier.verify(request) is None

    def test_the_url_and_method_are_signed(self) -> None:
        signed = self.sign(make_request(), self.secret)
        verifier = self.make_verifier(self.secret)
        assert verifier.verify(replace(signed, url=URL + "&x=1")) is not None
        assert verifier.verify(replace(signed, method="PUT")) is not None

    def test_version_header_is_case_insensitive(self) -> None:
        signed = self.sign(make_request(), self.secret)
        upper = with_headers(signed, **{"x-hubspot-signature-version": "V2"})
        assert self.make_verifier(self.secret).verify(upper) is None

    def test_v2_is_refused_when_the_source_only_accepts_v3(self) -> None:
        signed = self.sign(make_request(), self.secret)
        assert HubSpotSignature(self.secret, ("v3",)).verify(signed) is not None

    @pytest.mark.parametrize("version", ["v3", "v4", "", "v0"])
    def test_unknown_version_is_rejected(self, version: str) -> None:
        signed = self.sign(make_request(), self.secret)
        relabelled = with_headers(signed, **{"x-hubspot-signature-version": version})
        assert self.make_verifier(self.secret).verify(relabelled) is not None


class TestHubSpotV1(SignsBodyContract):
    secret = SECRETS["hubspot"]
    wrong_secret = "another-hubspot-client-secret"
    credential_headers = ("x-hubspot-signature",)

    def make_verifier(self, secret: str, clock: Callable[[], float] = AT_NOW) -> Verifier:
        return HubSpotSignature(secret, ("v3", "v2", "v1"), clock=clock)  # opted in

    def sign(self, request: WebhookRequest, secret: str, at: float = NOW) -> WebhookRequest:
        signature = HubSpotSDK.get_signature(secret, request.body.decode(), "v1")
        return with_headers(
            request,
            **{"x-hubspot-signature": signature, "x-hubspot-signature-version": "v1"},
        )

    def test_hubspots_documented_example(self) -> None:
        body = (
            b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
            b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,'
            b'"changeSource":"CRM","changeFlag":"NEW","appId":54321}]'
        )
        request = make_request(
            body,
            headers={
                "x-hubspot-signature-version": "v1",
                "x-hubspot-signature": (
                    "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
                ),
            },
        )
        verifier = HubSpotSignature("yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy", ("v2", "v1"))
        assert verifier.verify(request) is None

    def test_version_header_defaults_to_v1(self) -> None:
        signed = without_header(
            self.sign(make_request(), self.secret), "x-hubspot-signature-version"
        )
        assert self.make_verifier(self.secret).verify(signed) is None

    def test_v1_is_refused_when_the_source_only_accepts_v3(self) -> None:
        # A downgrade: v1 signs neither URL nor time, so a v3-only source must refuse it.
        signed = self.sign(make_request(), self.secret)
        assert HubSpotSignature(self.secret, ("v3",)).verify(signed) is not None


# -- Meta -------------------------------------------------------------------------------------


class TestMetaSignature(SignsBodyContract):
    secret = SECRETS["meta_app"]
    wrong_secret = "another-meta-app-secret"
    credential_headers = ("x-hub-signature-256",)

    def make_verifier(self, secret: str, clock: Callable[[], float] = AT_NOW) -> Verifier:
        return MetaSignature(secret, "app_secret of source 'meta'")

    def sign(self, request: WebhookRequest, secret: str, at: float = NOW) -> WebhookRequest:
        digest = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
        return with_headers(request, **{"x-hub-signature-256": "sha256=" + digest})

    def test_signature_without_the_algorithm_prefix_is_rejected(self) -> None:
        signed = self.sign(make_request(), self.secret)
        bare = signed.headers["x-hub-signature-256"].removeprefix("sha256=")
        assert (
            self.make_verifier(self.secret).verify(
                with_headers(signed, **{"x-hub-signature-256": bare})
            )
            is not None
        )

    def test_the_legacy_sha1_header_alone_is_not_enough(self) -> None:
        digest = hmac.new(self.secret.encode(), BODY, hashlib.sha1).hexdigest()
        request = make_request(headers={"x-hub-signature": "sha1=" + digest})
        assert self.make_verifier(self.secret).verify(request) is not None

    def test_disabled_reason_names_the_setting(self) -> None:
        reason = self.make_verifier("").verify(self.sign(make_request(), self.secret))
        assert reason is not None and "app_secret of source 'meta'" in reason


# -- IP allow-list ------------------------------------------------------------------------


class TestIpAllowList(VerifierContract):
    # The "secret" of an allow-list is the network it allows; the request's "signature" is
    # its client address. An empty list allows nobody.
    secret = "203.0.113.0/24"
    wrong_secret = "192.0.2.0/24"
    disabled_word = None

    def make_verifier(self, secret: str, clock: Callable[[], float] = AT_NOW) -> Verifier:
        # A "rotation" of networks is a list allowing each of them.
        networks = ",".join(secret) if isinstance(secret, list) else secret
        return IpAllowList([ipaddress.ip_network(n) for n in networks.split(",") if n])

    def test_an_empty_secret_in_a_rotation_opens_nothing(self) -> None:
        # An empty entry adds no network: only the listed one is let in.
        verifier = self.make_verifier(["", self.secret])  # type: ignore[arg-type]
        assert verifier.verify(self.sign(make_request(), self.wrong_secret)) is not None
        assert verifier.verify(self.sign(make_request(), self.secret)) is None

    def sign(self, request: WebhookRequest, secret: str, at: float = NOW) -> WebhookRequest:
        # With no network configured, "signing" uses an address a real list would allow.
        network = ipaddress.ip_network(secret or self.secret)
        return replace(request, client_ip=str(next(network.hosts())))

    def without_credentials(self, request: WebhookRequest) -> Iterator[WebhookRequest]:
        yield replace(request, client_ip=None)
        yield replace(request, client_ip="")

    @pytest.mark.parametrize(
        "client_ip", ["not-an-ip", "203.0.113", "203.0.113.1:443", "::ffff:zz"]
    )
    def test_unparseable_client_address_is_rejected(self, client_ip: str) -> None:
        request = make_request(client_ip=client_ip)
        assert self.make_verifier(self.secret).verify(request) is not None

    def test_ipv6_and_several_networks(self) -> None:
        verifier = self.make_verifier("2001:db8::/32,203.0.113.0/24")
        assert verifier.verify(make_request(client_ip="2001:db8::1")) is None
        assert verifier.verify(make_request(client_ip="203.0.113.200")) is None
        assert verifier.verify(make_request(client_ip="2001:db9::1")) is not None
        assert verifier.verify(make_request(client_ip="203.0.114.1")) is not None


# -- HubSpot v3 through the ingress: the URL as HubSpot called it -----------------------------


def post_hubspot(
    client: TestClient,
    public_url: str,
    *,
    headers: dict[str, str] | None = None,
    signed_url: str | None = None,
) -> int:
    """POST a HubSpot v3 delivery signed (by HubSpot's SDK) for `signed_url` to the path and
    query of `public_url`; return the status."""
    body = (
        b'[{"eventId":%d,"subscriptionType":"company.propertyChange","objectId":7,'
        b'"occurredAt":1763800000000,"propertyName":"name","propertyValue":"Acme"}]'
        % time.time_ns()
    )
    stamp = hubspot_ms(time.time())
    signature = HubSpotSDK.get_signature(
        SECRETS["hubspot"],
        body.decode(),
        "v3",
        http_uri=hubspot_decoded(signed_url or public_url),
        timestamp=stamp,
    )
    parts = urlsplit(public_url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    response = client.post(
        target,
        content=body,
        headers={
            "content-type": "application/json",
            "x-hubspot-signature-v3": signature,
            "x-hubspot-request-timestamp": stamp,
            **(headers or {}),
        },
    )
    assert response.headers["content-type"].startswith("application/json")
    return response.status_code


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, run_workers=False)) as c:
        yield c


@pytest.fixture
def proxied_client(settings: Settings) -> Iterator[TestClient]:
    runtime = Runtime.build(settings.model_copy(update={"trust_proxy_headers": True}))
    try:
        with TestClient(create_app(runtime, run_workers=False)) as c:
            yield c
    finally:
        runtime.close()


PUBLIC = "https://hooks.example.com/webhooks/hubspot/company"
FORWARDED = {"x-forwarded-proto": "https", "x-forwarded-host": "hooks.example.com"}
QUERIES = [
    "",
    "?portalId=62515&appId=1160452",
    "?next=https%3A%2F%2Fx.test%2Fa%3Fb&who=ops%40acme.test&x=%28%29%2A%2C%3B%21%24%27",
    "?q=a%20b%3Dc%26d&pct=100%25",
]


@pytest.mark.parametrize("query", QUERIES)
def test_hubspot_v3_through_the_ingress(client: TestClient, query: str) -> None:
    assert post_hubspot(client, "http://testserver/webhooks/hubspot/company" + query) == 200


@pytest.mark.parametrize("query", QUERIES)
def test_hubspot_v3_behind_a_trusted_proxy(proxied_client: TestClient, query: str) -> None:
    # TLS ends at the proxy: HubSpot called https://hooks.example.com/..., the gateway hears
    # http://testserver/... and rebuilds the public URL from X-Forwarded-Proto/Host.
    assert post_hubspot(proxied_client, PUBLIC + query, headers=FORWARDED) == 200


def test_forwarded_headers_are_ignored_unless_the_proxy_is_trusted(client: TestClient) -> None:
    assert post_hubspot(client, PUBLIC + "?portalId=1", headers=FORWARDED) == 401


def test_behind_a_proxy_the_first_forwarded_value_is_the_callers(
    proxied_client: TestClient,
) -> None:
    chained = {
        "x-forwarded-proto": "https, http",
        "x-forwarded-host": "hooks.example.com, lb.internal",
    }
    assert post_hubspot(proxied_client, PUBLIC, headers=chained) == 200


def test_behind_a_proxy_a_signature_for_another_host_fails(proxied_client: TestClient) -> None:
    status = post_hubspot(
        proxied_client,
        PUBLIC,
        headers=FORWARDED,
        signed_url="https://evil.example.com/webhooks/hubspot/company",
    )
    assert status == 401


def test_behind_a_proxy_without_forwarded_headers_the_direct_url_is_used(
    proxied_client: TestClient,
) -> None:
    assert post_hubspot(proxied_client, "http://testserver/webhooks/hubspot/company") == 200
    assert post_hubspot(proxied_client, PUBLIC) == 401
