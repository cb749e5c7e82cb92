"""C2S lead enrichment: the pipeline of steps, over real HTTP against the fake identity and
person services and the fake C2S, with leads created by C2S's own webhooks through the
gateway."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from hookyard.app import create_app
from hookyard.config import Settings
from hookyard.db.engine import make_engine
from hookyard.domain.leads.enrichment import LEASE_EXPIRED, EnrichmentPipeline, Run
from hookyard.domain.leads.steps import (
    EnrichmentConfigError,
    Lead,
    Result,
    StepError,
    load_steps,
    message_text,
)
from hookyard.domain.leads.tables import lead_closures, leads
from hookyard.http import ApiClient
from hookyard.inbox.store import utcnow
from hookyard.runtime import Runtime
from hookyard.testing.fakes.c2s import ACTIONS, C2SState
from hookyard.testing.fakes.c2s import create_app as create_c2s_app
from hookyard.testing.fakes.enrichment import PEOPLE_PATH, EnrichmentState
from hookyard.testing.fakes.enrichment import create_app as create_people_app
from hookyard.testing.fakes.server import serving
from tests.conftest import ROOT, SECRETS, process_env
from tests.support import free_port, start_server, wait_for

PEOPLE_TOKEN = "people-test-token"
C2S_API_TOKEN = "c2s-api-test-token"
EMAIL = "maria.test@example.com"  # the fake C2S's default customer
PHONE = "+5511987654321"  # its phone, 11987654321, in E.164
DOCUMENT = "12345678909"
PERSON = {"name": "Maria Test", "birth_date": "1990-04-01", "monthly_income": 8500}
NEW_EMAIL = "maria.nova@example.com"
NEW_PHONE = "+5511912345678"
NEW_DOCUMENT = "98765432100"


@dataclass
class Rig:
    runtime: Runtime
    people: EnrichmentState
    people_url: str
    c2s: C2SState
    c2s_url: str
    gateway: str

    @property
    def pipeline(self) -> EnrichmentPipeline:
        [job] = [j for j in self.runtime.jobs if isinstance(j, EnrichmentPipeline)]
        return job

    def drain(self) -> int:
        """What `hookyard worker --once` does: events, then enrichment, until nothing is due."""
        return self.runtime.make_worker().drain()

    def receive(self) -> int:
        """Apply the received events only (no enrichment pass)."""
        return dataclasses.replace(self.runtime.make_worker(), jobs=()).drain()

    def create(self, **customer: Any) -> str:
        lead = self.c2s.create_lead(**customer)
        assert self.c2s.deliveries[-1].ok
        return str(lead["id"])

    def update(self, lead_id: str, **customer: Any) -> None:
        self.c2s.update_lead(lead_id, **customer)
        assert self.c2s.deliveries[-1].ok

    def lead(self, lead_id: str) -> dict[str, Any]:
        with self.runtime.engine.connect() as conn:
            row = conn.execute(select(leads).where(leads.c.c2s_lead_id == lead_id)).mappings().one()
        return dict(row)

    def set(self, lead_id: str, **values: Any) -> None:
        with self.runtime.engine.begin() as tx:
            tx.execute(update(leads).where(leads.c.c2s_lead_id == lead_id).values(**values))

    def person_lookups(self) -> int:
        return sum(r.path == PEOPLE_PATH for r in self.people.requests)


def enrichment_settings(people_url: str, c2s_url: str) -> dict[str, Any]:
    return {
        "enrichment_identity_url": people_url,
        "enrichment_identity_token": PEOPLE_TOKEN,
        "enrichment_person_url": people_url,
        "enrichment_person_token": PEOPLE_TOKEN,
        "c2s_api_url": c2s_url,
        "c2s_api_token": C2S_API_TOKEN,
        "enrichment_max_attempts": 3,
        "enrichment_retry_base_seconds": 0.2,
        "enrichment_retry_max_seconds": 0.4,
        "enrichment_timeout_seconds": 2.0,
        "enrichment_lease_seconds": 30.0,
        "provider_backoff_seconds": 0.01,  # between the tries of a connection that never opened
    }


@pytest.fixture
def fakes() -> Iterator[tuple[EnrichmentState, str, C2SState, str]]:
    people, c2s = EnrichmentState(PEOPLE_TOKEN), C2SState(C2S_API_TOKEN)
    with serving(create_people_app(people)) as people_url, serving(create_c2s_app(c2s)) as c2s_url:
        yield people, people_url, c2s, c2s_url


@pytest.fixture
def make_rig(
    settings: Settings, fakes: tuple[EnrichmentState, str, C2SState, str]
) -> Iterator[Callable[..., Rig]]:
    people, people_url, c2s, c2s_url = fakes
    with ExitStack() as stack:

        def make(**overrides: Any) -> Rig:
            values = enrichment_settings(people_url, c2s_url) | overrides
            runtime = Runtime.build(settings.model_copy(update=values))
            stack.callback(runtime.close)
            gateway = stack.enter_context(serving(create_app(runtime, run_workers=False)))
            # Subscribed as an operator does it, through C2S's API.
            for action in ACTIONS:
                httpx.post(
                    c2s_url + "/integration/leads/subscribe",
                    json={
                        "hook_url": gateway + "/api/v1/webhooks/c2s",
                        "hook_action": action,
                        "headers": {"X-Webhook-Token": SECRETS["c2s"]},
                    },
                    headers={"Authorization": f"Bearer {C2S_API_TOKEN}"},
                ).raise_for_status()
            return Rig(runtime, people, people_url, c2s, c2s_url, gateway)

        yield make


@pytest.fixture
def rig(make_rig: Callable[..., Rig]) -> Rig:
    return make_rig()


# --- the same-person rule -------------------------------------------------------------------


def test_the_same_person_is_enriched_and_the_lead_told(rig: Rig) -> None:
    rig.people.add_person(DOCUMENT, email=EMAIL, phone=PHONE, data=PERSON)
    lead_id = rig.create()
    assert rig.drain() == 1  # one event; the enrichment ran in the same drain
    lead = rig.lead(lead_id)
    assert lead["enrichment_status"] == "done"
    assert lead["document"] == DOCUMENT
    assert lead["enrichment_data"] == {"document": DOCUMENT, **PERSON}
    assert lead["enrichment_error"] is None and lead["enrichment_reason"] is None
    assert lead["enrichment_attempts"] == 1
    assert lead["enrichment_lease_owner"] is None and lead["enrichment_lease_until"] is None
    assert lead["enrichment_started_at"] <= lead["enrichment_finished_at"]
    assert [(s["step"], s["ok"]) for s in lead["enrichment_steps"]] == [
        ("identity", True),
        ("person", True),
        ("message", True),
    ]
    assert all(s["ms"] >= 0 for s in lead["enrichment_steps"])
    # The e-mail and the phone were looked up separately, as normalised.
    assert rig.people.lookups("email") == [EMAIL]
    assert rig.people.lookups("phone") == [PHONE]
    [message] = rig.c2s.messages_for(lead_id)
    assert message.text == message_text(DOCUMENT, lead["enrichment_data"])
    assert f"Document: {DOCUMENT}" in message.text and "Monthly income: 8500" in message.text
    assert message.idempotency_key is not None

    # Closing the lead records it for the notifier, and changes nothing of the enrichment.
    rig.c2s.close_lead(lead_id)
    rig.drain()
    lead = rig.lead(lead_id)
    assert (lead["status"], lead["enrichment_status"]) == ("closed", "done")
    with rig.runtime.engine.connect() as conn:
        [closure] = conn.execute(select(lead_closures)).mappings().all()
    assert closure["lead_id"] == lead["id"] and closure["notified_at"] is None


def test_email_and_phone_of_different_people_are_not_the_same_person(rig: Rig) -> None:
    rig.people.add_person("11111111111", email=EMAIL, data={"name": "Maria"})
    rig.people.add_person("22222222222", phone=PHONE, data={"name": "Someone else"})
    lead_id = rig.create()
    rig.drain()
    lead = rig.lead(lead_id)
    assert lead["enrichment_status"] == "not_same_person"
    assert lead["enrichment_reason"] == "the e-mail and the phone resolve to different documents"
    assert lead["document"] is None and lead["enrichment_data"] is None
    assert lead["enrichment_error"] is None and lead["enrichment_finished_at"] is not None
    assert rig.person_lookups() == 0
    assert rig.c2s.messages == []


def test_neither_identity_resolving_is_unmatched(rig: Rig) -> None:
    rig.people.add_person(DOCUMENT, email="someone@example.com", phone=NEW_PHONE, data=PERSON)
    lead_id = rig.create()
    rig.drain()
    lead = rig.lead(lead_id)
    assert lead["enrichment_status"] == "unmatched"
    assert lead["enrichment_reason"] == "the e-mail resolves to none; the phone resolves to none"
    assert lead["document"] is None and lead["enrichment_data"] is None
    assert rig.person_lookups() == 0
    assert rig.c2s.messages == []


NOT_CONFIRMED = "the e-mail and the phone were not confirmed to be the same person"


@pytest.mark.parametrize(
    ("known", "customer", "found_by", "reason"),
    [
        (
            {"email": EMAIL},
            {},
            "e-mail",
            "the e-mail resolves to a document; the phone resolves to none",
        ),
        (
            {"phone": PHONE},
            {},
            "phone",
            "the e-mail resolves to none; the phone resolves to a document",
        ),
        (
            {"email": EMAIL, "phone": PHONE},
            {"phone": "123"},  # invalid: the lead has only its e-mail
            "e-mail",
            "the e-mail resolves to a document; no valid phone to look up",
        ),
    ],
)
def test_only_one_identity_resolving_enriches_from_it_unconfirmed(
    rig: Rig, known: dict[str, str], customer: dict[str, str], found_by: str, reason: str
) -> None:
    rig.people.add_person(DOCUMENT, **known, data=PERSON)
    lead_id = rig.create(**customer)
    rig.drain()
    lead = rig.lead(lead_id)
    assert lead["enrichment_status"] == "enriched_single_source"
    assert lead["enrichment_reason"] == f"{NOT_CONFIRMED}: {reason}"
    assert (lead["document"], lead["enrichment_data"]) == (
        DOCUMENT,
        {"document": DOCUMENT, **PERSON},
    )
    assert rig.person_lookups() == 1
    [message] = rig.c2s.messages_for(lead_id)
    assert message.text == message_text(DOCUMENT, lead["enrichment_data"], single_source=found_by)
    assert f"NOT CONFIRMED: {NOT_CONFIRMED}." in message.text
    assert f"Found by the lead's {found_by} only" in message.text


def test_a_fake_email_and_a_resolving_phone_enrich_once_though_run_and_delivered_twice(
    rig: Rig,
) -> None:
    """The issue's case: C2S's placeholder e-mail is refused as fake, the phone resolves. The
    lead is enriched from the phone and told once, though the webhook arrives twice and the
    run that posted the message died before writing its outcome (its lease expired)."""
    rig.people.add_person(DOCUMENT, email="1199999999333@gmail.com", phone=PHONE, data=PERSON)
    lead_id = rig.create(email="1199999999333@gmail.com")
    rig.c2s.redeliver()  # the same on_create_lead again: stored once
    assert rig.c2s.deliveries[-1].ok
    rig.receive()
    lead = rig.lead(lead_id)
    assert (lead["email"], lead["enrichment_status"]) == (None, "pending")
    assert lead["validation_errors"] == {"email": "fake: a run of 6 identical digits"}

    crashed = rig.pipeline.claim("crashed")
    assert crashed is not None
    run = rig.pipeline.run(crashed)  # every step, the message posted; never recorded
    assert run.failure is None and run.result.status == "enriched_single_source"
    assert len(rig.c2s.messages_for(lead_id)) == 1
    rig.set(lead_id, enrichment_lease_until=utcnow() - timedelta(seconds=1))

    rig.drain()  # the lease is taken back and the lead run again: the same message key
    lead = rig.lead(lead_id)
    assert (lead["enrichment_status"], lead["enrichment_attempts"]) == (
        "enriched_single_source",
        2,
    )
    assert lead["enrichment_reason"] == (
        f"{NOT_CONFIRMED}: no valid e-mail to look up; the phone resolves to a document"
    )
    assert (lead["document"], lead["enrichment_data"]) == (
        DOCUMENT,
        {"document": DOCUMENT, **PERSON},
    )
    assert rig.people.lookups("email") == []  # the fake address is never looked up
    assert rig.people.lookups("phone") == [PHONE, PHONE]
    posts = [r for r in rig.c2s.requests if r.path.endswith("/create_message")]
    # Posted twice with one Idempotency-Key: created, then the first answered again.
    assert [r.status for r in posts] == [201, 200]
    [message] = rig.c2s.messages_for(lead_id)  # C2S kept one
    assert (
        message.idempotency_key == f"hookyard-enrichment-{lead['id']}-{lead['contact_hash'][:16]}"
    )
    assert message.text.startswith(f"Hookyard enrichment: NOT CONFIRMED: {NOT_CONFIRMED}.")
    assert "Found by the lead's phone only" in message.text
    assert f"Document: {DOCUMENT}" in message.text and "Name: Maria Test" in message.text
    assert not rig.pipeline.record(crashed, run)  # the crashed run's late result is dropped

    rig.c2s.redeliver(0)  # and once more, after it all: nothing runs again
    rig.drain()
    assert rig.lead(lead_id)["enrichment_attempts"] == 2
    assert len(rig.c2s.messages_for(lead_id)) == 1


def test_the_delivery_statistics_count_the_hook_actions_and_outcomes(rig: Rig) -> None:
    rig.people.add_person(DOCUMENT, email=EMAIL, phone=PHONE, data=PERSON)
    rig.people.add_person(NEW_DOCUMENT, phone=NEW_PHONE, data={"name": "Nova"})
    same = rig.create()  # done
    single = rig.create(email="1199999999333@gmail.com", phone="11912345678")
    nobody = rig.create(email="nobody@example.com", phone="11955554444")
    rig.update(nobody, name="Nobody Else")
    rig.c2s.close_lead(same)
    rig.drain()
    assert [rig.lead(i)["enrichment_status"] for i in (same, single, nobody)] == [
        "done", "enriched_single_source", "unmatched",
    ]  # fmt: skip
    answer = httpx.get(
        rig.gateway + "/api/v1/stats/deliveries",
        headers={"Authorization": f"Bearer {SECRETS['admin']}"},
    )
    assert answer.status_code == 200, answer.text
    *_, today = answer.json()["leads"]
    assert today["day"] == utcnow().date().isoformat()
    assert today["hook_actions"] == {
        "on_create_lead": 3, "on_update_lead": 1, "on_close_lead": 1, "other": 0,
    }  # fmt: skip
    assert today["enrichment"] == {
        "done": 1, "enriched_single_source": 1, "unmatched": 1, "not_same_person": 0, "failed": 0,
    }  # fmt: skip


def test_a_single_source_retry_does_not_post_the_message_twice(rig: Rig) -> None:
    rig.people.add_person(DOCUMENT, phone=PHONE, data=PERSON)
    rig.c2s.fail_next(1, 502)  # the message step's POST
    lead_id = rig.create(email="1199999999333@gmail.com")
    rig.drain()
    assert rig.lead(lead_id)["enrichment_status"] == "pending"
    wait_for(
        lambda: (
            rig.drain() == 0 and rig.lead(lead_id)["enrichment_status"] == "enriched_single_source"
        )
    )
    assert len(rig.c2s.messages_for(lead_id)) == 1


def test_a_single_source_without_person_data_says_both(rig: Rig) -> None:
    rig.people.add_person(DOCUMENT, phone=PHONE)  # no person data
    lead_id = rig.create()
    rig.drain()
    lead = rig.lead(lead_id)
    assert (lead["enrichment_status"], lead["document"]) == ("enriched_single_source", DOCUMENT)
    assert lead["enrichment_reason"] == (
        f"{NOT_CONFIRMED}: the e-mail resolves to none; the phone resolves to a document; "
        "the person service has no data for the document"
    )
    [message] = rig.c2s.messages_for(lead_id)
    assert "NOT CONFIRMED" in message.text


def test_a_document_without_person_data_is_done_and_says_so(rig: Rig) -> None:
    rig.people.add_person(DOCUMENT, email=EMAIL, phone=PHONE)  # no person data
    lead_id = rig.create()
    rig.drain()
    lead = rig.lead(lead_id)
    assert (lead["enrichment_status"], lead["document"]) == ("done", DOCUMENT)
    assert lead["enrichment_data"] is None
    assert lead["enrichment_reason"] == "the person service has no data for the document"
    assert len(rig.c2s.messages_for(lead_id)) == 1


# --- contact changes ------------------------------------------------------------------------


def test_a_contact_change_during_a_run_discards_the_stale_result(rig: Rig) -> None:
    rig.people.add_person(DOCUMENT, email=EMAIL, phone=PHONE, data=PERSON)
    rig.people.add_person(NEW_DOCUMENT, email=NEW_EMAIL, phone=NEW_PHONE, data={"name": "Nova"})
    lead_id = rig.create()
    rig.receive()
    claim = rig.pipeline.claim("first")
    assert claim is not None and claim.lead.email == EMAIL
    assert rig.lead(lead_id)["enrichment_status"] == "running"

    # The run's first lookup is held while C2S sends the new contact.
    rig.people.pause()
    runs: list[Run] = []
    thread = threading.Thread(target=lambda: runs.append(rig.pipeline.run(claim)))
    thread.start()
    try:
        wait_for(lambda: rig.people.waiting == 1, timeout=10)
        rig.update(lead_id, email=NEW_EMAIL, phone="11912345678")
        rig.receive()
        lead = rig.lead(lead_id)
        assert (lead["enrichment_status"], lead["phone"]) == ("pending", NEW_PHONE)
        assert lead["enrichment_attempts"] == 0  # a new contact starts afresh
    finally:
        rig.people.resume()
        thread.join(10)

    [run] = runs
    assert run.stale  # stopped after the identity step: no person lookup, no message
    assert [s["step"] for s in run.timings] == ["identity"]
    assert not rig.pipeline.record(claim, run)
    lead = rig.lead(lead_id)
    assert lead["enrichment_status"] == "pending" and lead["document"] is None
    assert rig.person_lookups() == 0 and rig.c2s.messages == []

    # The next pass enriches the new contact.
    rig.drain()
    lead = rig.lead(lead_id)
    assert (lead["enrichment_status"], lead["document"]) == ("done", NEW_DOCUMENT)
    assert lead["enrichment_data"] == {"document": NEW_DOCUMENT, "name": "Nova"}
    assert rig.people.lookups() == [EMAIL, PHONE, NEW_EMAIL, NEW_PHONE]
    [message] = rig.c2s.messages_for(lead_id)
    assert NEW_DOCUMENT in message.text and DOCUMENT not in message.text


def test_a_result_finished_after_the_contact_changed_is_not_written(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(enrichment_steps="identity,person")
    rig.people.add_person(DOCUMENT, email=EMAIL, phone=PHONE, data=PERSON)
    lead_id = rig.create()
    rig.receive()
    claim = rig.pipeline.claim("slow")
    assert claim is not None
    run = rig.pipeline.run(claim)
    assert not run.stale and run.result.document == DOCUMENT
    rig.update(lead_id, phone="11912345678")  # arrives before the result is written
    rig.receive()
    assert not rig.pipeline.record(claim, run)
    lead = rig.lead(lead_id)
    assert (lead["enrichment_status"], lead["document"]) == ("pending", None)
    rig.drain()  # the new phone belongs to nobody known: the e-mail alone resolves
    lead = rig.lead(lead_id)
    assert (lead["enrichment_status"], lead["document"]) == ("enriched_single_source", DOCUMENT)


def test_no_contact_change_means_no_new_enrichment(rig: Rig) -> None:
    rig.people.add_person(DOCUMENT, email=EMAIL, phone=PHONE, data=PERSON)
    lead_id = rig.create()
    rig.drain()
    assert rig.lead(lead_id)["enrichment_status"] == "done"
    lookups = len(rig.people.requests)
    # A new name, the e-mail's case and the phone's formatting: the same contact.
    rig.update(lead_id, name="Maria T.", email="MARIA.TEST@EXAMPLE.COM", phone="(11) 98765-4321")
    rig.drain()
    lead = rig.lead(lead_id)
    assert (lead["name"], lead["enrichment_status"]) == ("Maria T.", "done")
    assert lead["enrichment_attempts"] == 1
    assert len(rig.people.requests) == lookups
    assert len(rig.c2s.messages_for(lead_id)) == 1
    # A lost webhook changes nothing either.
    rig.c2s.update_lead(lead_id, phone="11912345678", deliver=False)
    assert [lost.events for lost in rig.c2s.lost] == [("on_update_lead",)]
    rig.drain()
    assert rig.lead(lead_id)["phone"] == PHONE
    assert len(rig.people.requests) == lookups


# --- failures and retries -------------------------------------------------------------------


def test_a_503_is_retried_with_backoff(rig: Rig) -> None:
    rig.people.add_person(DOCUMENT, email=EMAIL, phone=PHONE, data=PERSON)
    rig.people.fail_next(1, 503)
    lead_id = rig.create()
    rig.drain()
    lead = rig.lead(lead_id)
    assert lead["enrichment_status"] == "pending"
    assert lead["enrichment_attempts"] == 1
    assert lead["enrichment_error"] == "identity: answered 503 Service Unavailable"
    assert lead["enrichment_steps"][0]["ok"] is False
    # Equal jitter on base 0.2 s: the retry waits between 0.1 and 0.2 s after the failure.
    wait = (lead["enrichment_next_attempt_at"] - lead["updated_at"]).total_seconds()
    assert 0.1 <= wait <= 0.21
    wait_for(lambda: rig.drain() == 0 and rig.lead(lead_id)["enrichment_status"] == "done")
    lead = rig.lead(lead_id)
    assert (lead["enrichment_attempts"], lead["document"]) == (2, DOCUMENT)
    assert lead["enrichment_error"] is None and lead["enrichment_next_attempt_at"] is None
    assert len(rig.c2s.messages_for(lead_id)) == 1


def test_a_429_waits_at_least_its_retry_after(rig: Rig) -> None:
    rig.people.add_person(DOCUMENT, email=EMAIL, phone=PHONE, data=PERSON)
    rig.people.fail_next(1, 429, retry_after=1)
    lead_id = rig.create()
    rig.drain()
    lead = rig.lead(lead_id)
    assert lead["enrichment_status"] == "pending"
    assert lead["enrichment_error"] == "identity: answered 429 Too Many Requests"
    # The backoff alone would be at most 0.4 s; Retry-After asks for 1 s.
    wait = (lead["enrichment_next_attempt_at"] - lead["updated_at"]).total_seconds()
    assert 1.0 <= wait < 1.1
    requests = len(rig.people.requests)
    rig.drain()  # not due yet: nothing is called
    assert len(rig.people.requests) == requests
    wait_for(lambda: rig.drain() == 0 and rig.lead(lead_id)["enrichment_status"] == "done")
    assert rig.lead(lead_id)["enrichment_attempts"] == 2


def test_a_retry_does_not_post_the_message_twice(rig: Rig) -> None:
    rig.people.add_person(DOCUMENT, email=EMAIL, phone=PHONE, data=PERSON)
    rig.c2s.fail_next(1, 502)  # the message step's POST
    lead_id = rig.create()
    rig.drain()
    lead = rig.lead(lead_id)
    assert lead["enrichment_status"] == "pending"
    assert lead["enrichment_error"] == "message: answered 502 Bad Gateway"
    assert [s["ok"] for s in lead["enrichment_steps"]] == [True, True, False]
    wait_for(lambda: rig.drain() == 0 and rig.lead(lead_id)["enrichment_status"] == "done")
    assert len(rig.c2s.messages_for(lead_id)) == 1


def test_a_definitive_4xx_fails_at_once(rig: Rig) -> None:
    rig.people.add_person(DOCUMENT, email=EMAIL, phone=PHONE, data=PERSON)
    rig.people.fail_next(1, 422)
    lead_id = rig.create()
    rig.drain()
    lead = rig.lead(lead_id)
    assert lead["enrichment_status"] == "failed"
    assert lead["enrichment_attempts"] == 1
    assert lead["enrichment_error"] == "identity: answered 422 Unprocessable Entity"
    assert lead["enrichment_finished_at"] is not None
    assert lead["enrichment_next_attempt_at"] is None
    requests = len(rig.people.requests)
    rig.drain()
    assert len(rig.people.requests) == requests


def test_a_refused_token_names_the_setting_to_fix(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(enrichment_identity_token="not-the-token")
    lead_id = rig.create()
    rig.drain()
    lead = rig.lead(lead_id)
    assert lead["enrichment_status"] == "failed"
    assert lead["enrichment_error"] == (
        "identity: answered 401 Unauthorized: check HOOKYARD_ENRICHMENT_IDENTITY_TOKEN"
    )


def test_a_lead_unknown_to_c2s_fails_on_the_message(rig: Rig) -> None:
    rig.people.add_person(DOCUMENT, email=EMAIL, phone=PHONE, data=PERSON)
    lead_id = rig.create()
    rig.receive()
    with rig.runtime.engine.begin() as tx:  # as if the lead came from another C2S account
        tx.execute(update(leads).values(c2s_lead_id="unknown-to-c2s"))
    rig.drain()
    lead = rig.lead("unknown-to-c2s")
    assert lead["enrichment_status"] == "failed"
    assert lead["enrichment_error"] == "message: answered 404 Not Found"
    assert lead["document"] is None
    assert rig.c2s.messages_for(lead_id) == []


def test_attempts_run_out_then_failed_with_the_error(rig: Rig) -> None:
    rig.people.fail_next(10, 500)
    lead_id = rig.create()
    wait_for(lambda: rig.drain() == 0 and rig.lead(lead_id)["enrichment_status"] == "failed")
    lead = rig.lead(lead_id)
    assert lead["enrichment_attempts"] == 3
    assert lead["enrichment_error"] == "identity: answered 500 Internal Server Error"
    assert len(rig.people.requests) == 3  # each attempt stopped at its first lookup
    assert rig.pipeline.next_due_at() is None


def test_no_connection_and_timeouts_are_transient(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(enrichment_identity_url=f"http://127.0.0.1:{free_port()}")
    lead_id = rig.create()
    rig.drain()
    lead = rig.lead(lead_id)
    assert lead["enrichment_status"] == "pending"
    assert lead["enrichment_error"].startswith("identity: ConnectError")


def test_a_timeout_is_transient(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(enrichment_timeout_seconds=0.3)
    rig.people.add_person(DOCUMENT, email=EMAIL, phone=PHONE, data=PERSON)
    rig.people.delay_next(1, 1.0)
    lead_id = rig.create()
    rig.drain()
    lead = rig.lead(lead_id)
    assert lead["enrichment_status"] == "pending"
    assert lead["enrichment_error"] == "identity: timed out (ReadTimeout)"
    wait_for(lambda: rig.drain() == 0 and rig.lead(lead_id)["enrichment_status"] == "done")


# --- leases and concurrency -----------------------------------------------------------------


def test_an_expired_lease_is_taken_back(rig: Rig) -> None:
    rig.people.add_person(DOCUMENT, email=EMAIL, phone=PHONE, data=PERSON)
    lead_id = rig.create()
    rig.receive()
    crashed = rig.pipeline.claim("crashed")  # and never finishes
    assert crashed is not None
    rig.drain()
    assert rig.lead(lead_id)["enrichment_status"] == "running"  # its lease holds
    assert rig.people.requests == []

    rig.set(lead_id, enrichment_lease_until=utcnow() - timedelta(seconds=1))
    rig.drain()
    lead = rig.lead(lead_id)
    assert (lead["enrichment_status"], lead["enrichment_attempts"]) == ("done", 2)
    assert lead["enrichment_error"] is None
    # The crashed run coming back late cannot overwrite anything.
    assert not rig.pipeline.record(crashed, Run())


def test_an_expired_lease_without_attempts_left_fails(rig: Rig) -> None:
    lead_id = rig.create()
    rig.receive()
    rig.set(
        lead_id,
        enrichment_status="running",
        enrichment_attempts=3,
        enrichment_lease_owner="gone",
        enrichment_lease_until=utcnow() - timedelta(seconds=1),
    )
    rig.drain()
    lead = rig.lead(lead_id)
    assert (lead["enrichment_status"], lead["enrichment_error"]) == ("failed", LEASE_EXPIRED)
    assert rig.people.requests == []


def test_workers_never_enrich_the_same_lead_twice(rig: Rig) -> None:
    ids = []
    for i in range(12):
        email, phone = f"lead{i}@example.com", f"119876500{i:02d}"
        rig.people.add_person(f"{i:011d}", email=email, phone=f"+55{phone}", data={"n": i})
        ids.append(rig.create(email=email, phone=phone))
    rig.receive()
    handled: list[int] = []

    def work(name: str) -> None:
        while n := rig.pipeline.run_pass(name):
            handled.append(n)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(handled) == 12
    assert {rig.lead(i)["enrichment_status"] for i in ids} == {"done"}
    assert {rig.lead(i)["enrichment_attempts"] for i in ids} == {1}
    assert set(Counter(rig.people.lookups("email")).values()) == {1}
    assert Counter(m.lead_id for m in rig.c2s.messages) == dict.fromkeys(ids, 1)


# --- configuration --------------------------------------------------------------------------


def test_without_urls_enrichment_is_off_and_leads_stay_pending(
    runtime: Runtime, fakes: tuple[EnrichmentState, str, C2SState, str]
) -> None:
    assert not [j for j in runtime.jobs if isinstance(j, EnrichmentPipeline)]
    _, _, c2s, _ = fakes
    with serving(create_app(runtime, run_workers=False)) as gateway:
        c2s.subscribe_all(gateway + "/api/v1/webhooks/c2s", {"X-Webhook-Token": SECRETS["c2s"]})
        lead_id = c2s.create_lead()["id"]
    assert runtime.make_worker().drain() == 1
    with runtime.engine.connect() as conn:
        row = conn.execute(select(leads).where(leads.c.c2s_lead_id == lead_id)).mappings().one()
    assert (row["enrichment_status"], row["enrichment_attempts"]) == ("pending", 0)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"enrichment_identity_url": "http://x"},
            "enrichment step 'person' needs HOOKYARD_ENRICHMENT_PERSON_URL (or leave 'person' "
            "out of HOOKYARD_ENRICHMENT_STEPS)",
        ),
        (
            {
                "enrichment_steps": "identity,message",
                "enrichment_identity_url": "http://x",
                "c2s_api_url": "http://c2s",
                "c2s_api_token": " ",
            },
            "enrichment step 'message' needs HOOKYARD_C2S_API_TOKEN",
        ),
        (
            {"enrichment_steps": "identity,score", "enrichment_identity_url": "http://x"},
            "unknown enrichment step 'score' in HOOKYARD_ENRICHMENT_STEPS",
        ),
        (
            {"enrichment_steps": "identity", "enrichment_identity_url": "ftp://x"},
            "HOOKYARD_ENRICHMENT_IDENTITY_URL must be an http(s) URL",
        ),
        (
            {
                "enrichment_steps": "message",
                "c2s_api_url": "http://c2s",
                "c2s_api_token": "t",
                "c2s_message_path": "/leads/{id}/messages",
            },
            "HOOKYARD_C2S_MESSAGE_PATH must start with / and contain {lead_id}",
        ),
        (
            {"enrichment_steps": "tests.test_enrichment:not_a_step"},
            "'tests.test_enrichment:not_a_step' in HOOKYARD_ENRICHMENT_STEPS did not return a step",
        ),
    ],
)
def test_a_configuration_that_cannot_work_is_refused_at_start(
    settings: Settings, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(EnrichmentConfigError) as error:
        Runtime.build(settings.model_copy(update=values))
    assert message in str(error.value)


@dataclass
class Scoring:
    """A custom step: scores the person the identity step matched."""

    name: str = "score"
    seen: list[str] = field(default_factory=list)

    def run(self, lead: Lead, result: Result) -> None:
        assert result.document is not None
        self.seen.append(lead.c2s_lead_id)
        result.data = {"score": len(result.document)}


def scoring_step(settings: Settings, http: ApiClient) -> Scoring:
    return Scoring()


def not_a_step(settings: Settings, http: ApiClient) -> object:
    return object()


def test_a_custom_step_is_plugged_by_module_and_factory(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(enrichment_steps="identity, tests.test_enrichment:scoring_step")
    [_, step] = rig.pipeline.steps
    assert isinstance(step, Scoring)
    rig.people.add_person(DOCUMENT, email=EMAIL, phone=PHONE, data=PERSON)
    lead_id = rig.create()
    rig.drain()
    lead = rig.lead(lead_id)
    assert (lead["enrichment_status"], lead["enrichment_data"]) == ("done", {"score": 11})
    assert [s["step"] for s in lead["enrichment_steps"]] == ["identity", "score"]
    assert step.seen == [lead_id]
    assert rig.c2s.messages == []


def test_a_step_that_raises_is_retried_then_fails(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(enrichment_steps="tests.test_enrichment:broken_step")
    lead_id = rig.create()
    wait_for(lambda: rig.drain() == 0 and rig.lead(lead_id)["enrichment_status"] == "failed")
    lead = rig.lead(lead_id)
    assert lead["enrichment_attempts"] == 3
    assert lead["enrichment_error"] == "broken: unexpected KeyError: 'surname'"


@dataclass
class Broken:
    name: str = "broken"

    def run(self, lead: Lead, result: Result) -> None:
        raise KeyError("surname")


def broken_step(settings: Settings, http: ApiClient) -> Broken:
    return Broken()


def test_steps_without_a_document_say_which_step_is_missing(settings: Settings) -> None:
    values = {"enrichment_steps": "person", "enrichment_person_url": "http://people"}
    with ApiClient() as http:
        [step] = load_steps(settings.model_copy(update=values), http)
        lead = Lead(1, "c2s-1", None, None, EMAIL, PHONE, "hash", 1)
        with pytest.raises(StepError, match="list 'identity' before 'person'") as error:
            step.run(lead, Result())
        assert not error.value.transient


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(200, json={"doc": "1"}), "identity: answered without a 'document'"),
        (httpx.Response(200, json={"document": ""}), "identity: answered a 'document' that is"),
        (httpx.Response(200, text="<html>"), "identity: answered 200 OK without a JSON body"),
        (httpx.Response(302, headers={"location": "/"}), "identity: answered 302 Found"),
    ],
)
def test_an_unexpected_answer_is_a_definitive_error(
    settings: Settings, answer: httpx.Response, error: str
) -> None:
    values = {"enrichment_steps": "identity", "enrichment_identity_url": "http://people"}
    with ApiClient(transport=httpx.MockTransport(lambda _: answer)) as http:
        [step] = load_steps(settings.model_copy(update=values), http)
        with pytest.raises(StepError) as raised:
            step.run(Lead(1, "c2s-1", None, None, EMAIL, PHONE, "hash", 1), Result())
    assert raised.value.message.startswith(error)
    assert not raised.value.transient


# --- the worker hook ------------------------------------------------------------------------


@dataclass
class CountdownJob:
    left: int
    name: str = "countdown"
    due: datetime | None = None
    calls: list[str] = field(default_factory=list)

    def run_pass(self, worker: str) -> int:
        self.calls.append(worker)
        if self.left == 0:
            return 0
        self.left -= 1
        return 1

    def next_due_at(self) -> datetime | None:
        return self.due

    def close(self) -> None:
        self.left = 0


class BrokenJob:
    name = "broken"

    def run_pass(self, worker: str) -> int:
        raise RuntimeError("database down")

    def next_due_at(self) -> datetime | None:
        raise RuntimeError("database down")

    def close(self) -> None:
        return None


def test_every_worker_loop_runs_the_background_jobs(runtime: Runtime) -> None:
    countdown = CountdownJob(3)
    worker = dataclasses.replace(runtime.make_worker(), jobs=[BrokenJob(), countdown])
    assert worker.drain() == 0  # no events; the jobs ran until they had nothing left
    assert countdown.left == 0
    assert countdown.calls == [worker.name] * 4
    assert worker.run_once() == 0
    # An idle worker wakes for a job's next due time (a broken job is skipped).
    countdown.due = utcnow() + timedelta(seconds=0.5)
    assert 0.3 < worker._sleep_for() <= 0.52
    # A job that failed its last pass is not woken for at once, even when it says it is due.
    failing = CountdownJob(0, name="failing", due=utcnow())
    worker = dataclasses.replace(runtime.make_worker(), jobs=[failing])
    assert worker._sleep_for() < 0.1
    failing.run_pass = BrokenJob().run_pass  # type: ignore[method-assign]
    worker.run_once()
    assert worker._sleep_for() >= 1.0


# --- the processes ----------------------------------------------------------------------------


def test_serve_runs_the_pipeline_and_logs_no_contact_or_secret(
    settings: Settings, fakes: tuple[EnrichmentState, str, C2SState, str], tmp_path: Path
) -> None:
    people, people_url, c2s, c2s_url = fakes
    people.add_person(DOCUMENT, email=EMAIL, phone=PHONE, data=PERSON)
    extra = {
        f"HOOKYARD_{k.upper()}": v for k, v in enrichment_settings(people_url, c2s_url).items()
    }
    env = process_env(settings, **extra, HOOKYARD_LOG_LEVEL="info", HOOKYARD_LOG_FORMAT="json")
    proc, base = start_server(env, tmp_path / "serve.log")
    engine = make_engine(settings.database_url)
    try:
        c2s.subscribe_all(base + "/api/v1/webhooks/c2s", {"X-Webhook-Token": SECRETS["c2s"]})
        lead_id = c2s.create_lead()["id"]

        def status() -> str:
            with engine.connect() as conn:
                query = select(leads.c.enrichment_status).where(leads.c.c2s_lead_id == lead_id)
                return str(conn.execute(query).scalar())

        wait_for(lambda: status() == "done", timeout=20)
    finally:
        proc.stop()
        engine.dispose()
    assert len(c2s.messages_for(lead_id)) == 1
    output = proc.output()
    assert "lead_enrichment_finished" in output
    for secret in (EMAIL, PHONE, "11987654321", DOCUMENT, PEOPLE_TOKEN, C2S_API_TOKEN):
        assert secret not in output
    assert "m***@example.com" in output and "***4321" in output


def test_worker_once_drains_the_pipeline(
    settings: Settings, fakes: tuple[EnrichmentState, str, C2SState, str], tmp_path: Path
) -> None:
    people, people_url, c2s, c2s_url = fakes
    people.add_person(DOCUMENT, email=EMAIL, phone=PHONE, data=PERSON)
    runtime = Runtime.build(settings)  # enrichment off here: only receives
    try:
        with serving(create_app(runtime, run_workers=False)) as gateway:
            c2s.subscribe_all(gateway + "/api/v1/webhooks/c2s", {"X-Webhook-Token": SECRETS["c2s"]})
            lead_id = c2s.create_lead()["id"]
        extra = {
            f"HOOKYARD_{k.upper()}": v for k, v in enrichment_settings(people_url, c2s_url).items()
        }
        done = subprocess.run(
            [sys.executable, "-m", "hookyard.cli", "worker", "--once"],
            env=process_env(settings, **extra),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        with runtime.engine.connect() as conn:
            row = conn.execute(select(leads).where(leads.c.c2s_lead_id == lead_id)).mappings().one()
        assert (row["enrichment_status"], row["document"]) == ("done", DOCUMENT)
    finally:
        runtime.close()


# --- the fakes over HTTP ----------------------------------------------------------------------


def test_the_fakes_are_driven_over_http_for_demos(rig: Rig) -> None:
    person = {"document": DOCUMENT, "email": EMAIL, "phone": PHONE, "data": PERSON}
    assert httpx.post(rig.people_url + "/_fake/people", json=person).status_code == 201
    created = httpx.post(rig.c2s_url + "/_fake/leads", json={"name": "Maria Test"})
    assert created.status_code == 201
    lead_id = created.json()["id"]
    [delivery] = httpx.get(rig.c2s_url + "/_fake/deliveries").json()
    assert delivery["status"] == 200 and delivery["headers"]["x-webhook-token"] == SECRETS["c2s"]
    assert delivery["payload"]["attributes"]["customer"]["email"] == EMAIL
    rig.drain()
    [message] = httpx.get(rig.c2s_url + "/_fake/messages").json()
    assert message["lead_id"] == lead_id
    bearer = {"Authorization": f"Bearer {C2S_API_TOKEN}"}
    got = httpx.get(f"{rig.c2s_url}/integration/leads/{lead_id}", headers=bearer)
    assert got.json()["data"]["attributes"]["status"] == "open"
    assert httpx.get(f"{rig.c2s_url}/integration/leads/{lead_id}").status_code == 401
    lookup = httpx.post(rig.people_url + "/v1/identity/lookup", json={"email": EMAIL})
    assert lookup.status_code == 401  # the services want their bearer token too
    closed = httpx.post(f"{rig.c2s_url}/_fake/leads/{lead_id}/close", json={"deliver": False})
    assert closed.json()["status"] == "closed"
    assert [lost["events"] for lost in httpx.get(rig.c2s_url + "/_fake/lost").json()] == [
        ["on_close_lead"]
    ]
