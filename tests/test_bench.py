"""The benchmark's own parts: its realistic workload is what the providers send and what the
real adapters and handlers accept, its requests file reaches wrk intact, and wrk's report is
read right."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from hookyard.bench.databases import DEFAULT_PG_URL, Databases, prepare
from hookyard.bench.profiling import summarise_profile
from hookyard.bench.replay import raw_request, read_requests, requests_needed, write_requests
from hookyard.bench.report import check_goals, print_delivery_table, print_destination_table
from hookyard.bench.results import (
    Delivered,
    DeliveriesUnderLoad,
    LoadResult,
    Processing,
    ProcessResult,
)
from hookyard.bench.scenarios import Context, Options, bench_deliveries
from hookyard.bench.sources import (
    DESTINATION_NAME,
    BenchSecrets,
    build_sources,
    destination_entry,
    provider_entries,
    write_sources,
)
from hookyard.bench.workload import EQUAL_MIX, Mix, Planned, Workload, new_events, webhook_request
from hookyard.bench.wrk import WrkLoad, WrkStats, parse_wrk
from hookyard.config import Settings
from hookyard.contacts import validate_email, validate_phone
from hookyard.domain.crm.tables import customers
from hookyard.inbox.model import Status
from hookyard.runtime import Runtime
from hookyard.sources import load_sources_file
from hookyard.testing.simulate import Delivery

BENCH_DIR = Path(__file__).resolve().parent.parent / "bench"
BASE_URL = "http://127.0.0.1:18000"


@pytest.fixture(scope="module")
def keys() -> BenchSecrets:
    return BenchSecrets.generate()


def workload(keys: BenchSecrets, mix: Mix = EQUAL_MIX, seed: int = 7) -> Workload:
    return Workload(build_sources(provider_entries(keys)), BASE_URL, mix, seed=seed, tag="t")


@pytest.fixture(scope="module")
def stream(keys: BenchSecrets) -> list[Planned]:
    return workload(keys).take(3000)


def payload(p: Planned) -> object:
    return json.loads(p.delivery.body)


# -- the workload is what the providers send ------------------------------------------------


def test_every_delivery_verifies_and_parses_with_the_real_adapters(
    keys: BenchSecrets, stream: list[Planned]
) -> None:
    sources = build_sources(provider_entries(keys))
    seen: Counter[str] = Counter()
    dedup_keys: set[tuple[str, str]] = set()
    for p in stream:
        source = sources[p.source]
        request = webhook_request(p.delivery)
        assert source.adapter.verify(request) is None, p.provider
        events = source.adapter.parse(request)
        assert len(events) == p.events
        seen[p.provider] += 1
        for event in events:
            key = (source.name, event.dedup_key)
            assert key not in dedup_keys, "every delivery is a new event, never a duplicate"
            dedup_keys.add(key)
    # The default mix: roughly equal shares of the four providers.
    assert set(seen) == {"c2s", "meta", "hubspot", "tcr"}
    assert all(600 <= n <= 900 for n in seen.values()), seen


def test_c2s_leads_repeat_with_their_contact_and_move_forward_in_time(
    stream: list[Planned],
) -> None:
    by_lead: dict[str, list[dict[str, object]]] = {}
    for p in stream:
        if p.provider == "c2s":
            body = payload(p)
            assert isinstance(body, dict)
            by_lead.setdefault(body["id"], []).append(body)
    repeated = [events for events in by_lead.values() if len(events) > 1]
    assert len(repeated) > len(by_lead) / 3, "most leads are updated after their creation"
    emails = set()
    closed = 0
    for events in by_lead.values():
        actions = [e["hook_action"] for e in events]
        assert actions[0] == "on_create_lead"
        assert set(actions[1:-1]) <= {"on_update_lead"}
        closed += actions[-1] == "on_close_lead"
        contacts = {json.dumps(e["attributes"]["customer"]) for e in events}  # type: ignore[index]
        assert len(contacts) == 1, "a lead keeps its contact"
        times = [e["attributes"]["updated_at"] for e in events]  # type: ignore[index]
        assert times == sorted(times) and len(set(times)) == len(times)
        customer = events[0]["attributes"]["customer"]  # type: ignore[index]
        email, email_error = validate_email(customer["email"])
        phone, phone_error = validate_phone(customer["phone"])
        assert email_error is None and phone_error is None
        assert phone is not None and phone.startswith("+55") and phone[5] == "9"  # a mobile
        emails.add(email)
    assert len(emails) == len(by_lead), "each lead has a contact of its own"
    assert 0 < closed < len(by_lead)


def test_meta_changes_revisit_a_pool_of_templates_some_requests_carry_several(
    stream: list[Planned],
) -> None:
    templates: Counter[object] = Counter()
    wabas: set[str] = set()
    sizes: Counter[int] = Counter()
    sent: list[int] = []
    for p in stream:
        if p.provider != "meta":
            continue
        assert "x-hub-signature-256" in p.delivery.headers
        [entry] = payload(p)["entry"]  # type: ignore[index]
        wabas.add(entry["id"])
        sent.append(entry["time"])
        sizes[len(entry["changes"])] += 1
        for change in entry["changes"]:
            templates[change["value"]["message_template_id"]] += 1
    assert len(wabas) == 10
    assert set(sizes) == {1, 2, 3} and sizes[1] > sizes[2] + sizes[3]
    assert max(templates.values()) > 5, "templates change again and again"
    assert sent == sorted(sent) and len(set(sent)) == len(sent)


def test_hubspot_changes_name_linked_companies_inbound_and_outbound_fields(
    keys: BenchSecrets,
) -> None:
    work = workload(keys, Mix.parse("hubspot"))
    linked = {c.company_id for c in work.companies}
    properties: Counter[str] = Counter()
    for p in work.take(500):
        assert p.provider == "hubspot"
        stamp = int(p.delivery.headers["x-hubspot-request-timestamp"])
        assert abs(stamp / 1000 - datetime.now(UTC).timestamp()) < 60  # inside the 5 minutes
        items = payload(p)
        assert isinstance(items, list) and len(items) == p.events
        for item in items:
            assert item["subscriptionType"] == "company.propertyChange"
            assert item["objectId"] in linked
            properties[item["propertyName"]] += 1
    assert {"name", "hookyard_credit_limit"} <= set(properties)  # inbound
    assert {"hookyard_current_balance", "hookyard_ban"} <= set(properties)  # outbound only


def test_tcr_carrier_decisions_and_brand_identity_carry_the_token(
    keys: BenchSecrets, stream: list[Planned]
) -> None:
    campaigns: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for p in stream:
        if p.provider != "tcr":
            continue
        assert webhook_request(p.delivery).query["token"] == keys.tcr_token
        body = payload(p)
        assert isinstance(body, dict)
        kinds[body["eventType"]] += 1
        if body["eventType"].startswith("MNO_CAMPAIGN_OPERATION_"):
            assert p.source == "tcr-campaigns" and body["mnoStatuses"]
            campaigns[body["campaignId"]] += 1
        else:
            assert p.source == "tcr-brands" and body["brandIdentityStatus"]
    assert kinds["MNO_CAMPAIGN_OPERATION_APPROVED"] > kinds["MNO_CAMPAIGN_OPERATION_SUSPENDED"]
    assert kinds["BRAND_IDENTITY_STATUS_UPDATE"] > 0
    assert max(campaigns.values()) > 2, "a campaign hears from several carriers"


def test_a_mix_gives_each_provider_its_share() -> None:
    mix = Mix.parse("c2s=3, meta=1")
    assert mix.providers() == ["c2s", "meta"] and str(mix) == "c2s=3,meta=1"
    with pytest.raises(ValueError, match="unknown provider"):
        Mix.parse("c2s,stripe")
    with pytest.raises(ValueError, match="at least one"):
        Mix.parse("c2s=0")
    with pytest.raises(ValueError, match="finite"):
        Mix.parse("c2s=nan")


def test_the_workload_is_processed_by_the_real_handlers(
    keys: BenchSecrets, db_url: str, tmp_path: Path
) -> None:
    work = workload(keys, seed=11)
    companies = [(c.company_id, c.name, c.ban) for c in work.companies]
    prepare(db_url, None, companies, work.customers_changed_at)
    sources_path = write_sources(tmp_path / "bench-sources.toml", provider_entries(keys))
    settings = Settings(
        database_url=db_url, sources=sources_path, demo_secrets_file=tmp_path / "demo.env"
    )
    runtime = Runtime.build(settings)
    try:
        received = datetime.now(UTC)
        by_name = runtime.sources.by_name()
        stored = [
            e for p in work.take(300) for e in new_events(by_name[p.source], p.delivery, received)
        ]
        runtime.store.insert_batch(stored)
        runtime.make_worker().drain()
        statuses = runtime.store.count_by_status()
        with runtime.engine.connect() as conn:
            names = set(conn.execute(select(customers.c.company_name)).scalars())
    finally:
        runtime.close()
    assert sum(statuses.values()) == len(stored)
    assert set(statuses) <= {Status.DONE, Status.IGNORED, Status.SUPERSEDED}, statuses
    assert statuses[Status.DONE] > 0.7 * len(stored)
    # HubSpot's name changes reached the linked customers (ours were older).
    assert names - {name for _, name, _ in companies}


# -- the deliveries scenarios -----------------------------------------------------------------


def test_the_sources_file_carries_the_destination_as_the_server_reads_it(
    keys: BenchSecrets, tmp_path: Path
) -> None:
    entries = provider_entries(keys)
    url = "http://127.0.0.1:18001/deliveries"
    path = write_sources(tmp_path / "s.toml", entries, [destination_entry(keys, url, entries)])
    loaded = load_sources_file(path, env={})
    (destination,) = loaded.destinations
    assert destination.name == DESTINATION_NAME and destination.url == url
    assert destination.secret == keys.destination_secret
    assert destination.secret.startswith("whsec_")
    assert (
        set(destination.sources) == {s.name for s in loaded.sources} == {e["name"] for e in entries}
    )
    assert (destination.ordered, destination.rate_per_second, destination.event_types) == (
        False,
        None,
        (),
    )


def test_the_deliveries_scenario_sends_every_event_once_to_the_bare_endpoint(
    keys: BenchSecrets, tmp_path: Path
) -> None:
    """A tiny run of the scenario as `hookyard bench` runs it: the bare endpoint and one
    `hookyard worker` as processes, the events preloaded with their deliveries."""
    backend = os.environ.get("HOOKYARD_TEST_DATABASE", "sqlite")
    databases = Databases(tmp_path, os.environ.get("HOOKYARD_TEST_PG_URL", DEFAULT_PG_URL))
    options = Options(
        duration=1,
        warmup=0,
        body_bytes=200,
        mix=EQUAL_MIX,
        events=200,
        drain_threads=1,
        drain_timeout=60.0,
        max_requests=1000,
    )
    ctx = Context(options, WrkLoad("wrk", 1, 1), BENCH_DIR, tmp_path, databases, keys, None)
    ctx.rates["bare"] = 10_000.0
    try:
        result = bench_deliveries(ctx, backend)
    finally:
        databases.drop_all()
    delivered = result.delivered
    assert delivered is not None
    assert result.events >= 200 and delivered.deliveries == result.events  # one per event
    assert delivered.statuses == {"delivered": delivered.deliveries}, delivered.errors
    assert set(result.statuses) <= {"done", "ignored", "superseded"}, result.errors
    assert delivered.per_worker_s > 0 and result.events_per_s > 0
    assert delivered.ratio_vs_bare == delivered.per_worker_s / 10_000.0
    assert result.rate == delivered.per_worker_s
    assert result.worker_cpu is not None and result.worker_cpu > 0


def test_the_deliveries_goal_and_tables_report_against_bare_and_plain_serve(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def deliveries(scenario: str, backend: str, per_s: float, diagnosis: bool) -> ProcessResult:
        result = ProcessResult(scenario, backend, "mixed", 0, 1, 1, 0, 0, 0, diagnosis=diagnosis)
        statuses = {"delivered": 9_990, "dead": 10}
        result.delivered = Delivered(10_000, 5.0, per_s, per_s, 20_000.0, statuses)
        return result

    slow = deliveries("deliveries-postgresql", "postgresql", 1_500.0, False)
    alone = deliveries("deliveries-only-postgresql", "postgresql", 2_500.0, True)
    lite = deliveries("deliveries-sqlite", "sqlite", 1_000.0, False)
    goals = {g.name: g for g in check_goals([], [slow, alone, lite])}
    assert list(goals) == ["deliveries-postgresql: deliveries/s by one worker"]  # PostgreSQL's
    goal = goals["deliveries-postgresql: deliveries/s by one worker"]
    assert (goal.met, goal.gap) == (False, "75% of the target, 500 short")

    print_delivery_table([slow, alone])
    table = capsys.readouterr().out
    assert "deliveries-only-postgresql (diag.)" in table
    row = next(line for line in table.splitlines() if line.startswith("deliveries-postgresql"))
    # deliveries, drain s, per worker/s, bare req/s, the ratio, events/s (none handled here),
    # the worker's CPU (not measured here)
    assert row.split()[1:] == ["10,000", "5.00", "1,500", "20,000", "7.5%", "-", "-"]
    assert "not delivered: {'dead': 10}" in table

    def serve(scenario: str, p99: float, deliveries: DeliveriesUnderLoad | None) -> LoadResult:
        stats = WrkStats(requests_per_s=2_000, duration_s=10, p99_ms=p99)
        result = LoadResult(scenario, "postgresql", 32, stats)
        result.processing = Processing(20_000, 20_000, 0, 1.0, 0, deliveries=deliveries)
        return result

    under_load = DeliveriesUnderLoad(20_000, 15_000, 5_000, 4.0, {"delivered": 20_000})
    print_destination_table(
        [
            serve("serve-postgresql", 20.0, None),
            serve("serve-destinations-postgresql", 30.0, under_load),
        ]
    )
    table = capsys.readouterr().out
    assert "serve-destinations-postgresql" in table and "1.50x" in table  # p99 vs plain serve
    assert "serve-postgresql in the same run: 2,000 req/s, p99 20.00 ms" in table
    assert "1,429" in table  # sustained: 20,000 deliveries / (10 s + 4 s)


# -- the requests file, and wrk ------------------------------------------------------------


def delivery(n: int) -> Delivery:
    return Delivery(
        "POST", f"{BASE_URL}/x?token=t", {"content-type": "application/json"}, b'{"n":%d}' % n
    )


def test_a_raw_request_is_what_the_delivery_says() -> None:
    raw = raw_request(delivery(5), "127.0.0.1:18000")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /x?token=t HTTP/1.1"
    assert "Host: 127.0.0.1:18000" in lines and "content-type: application/json" in lines
    assert f"Content-Length: {len(body)}" in lines and body == b'{"n":5}'


def test_the_requests_file_round_trips_and_each_thread_gets_every_nth(tmp_path: Path) -> None:
    requests = [raw_request(delivery(n), "h") for n in range(10)]
    path = tmp_path / "r.requests"
    write_requests(path, requests)
    assert read_requests(path) == requests
    slices = [read_requests(path, thread, 3) for thread in range(3)]
    assert slices[0] == requests[0::3] and slices[1] == requests[1::3]
    assert sorted(r for s in slices for r in s) == sorted(requests)
    assert requests_needed(5000, 10, cap=30_000) == 30_000
    assert requests_needed(100, 1, cap=30_000) == 2000  # a floor for tiny estimates


class _CountingServer:
    """An HTTP/1.1 keep-alive server that answers 200 and counts the bodies it got."""

    def __init__(self) -> None:
        self.bodies: Counter[bytes] = Counter()
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.bodies[await reader.readexactly(length)] += 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def __enter__(self) -> _CountingServer:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@pytest.fixture
def counting_server() -> Iterator[_CountingServer]:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed")
    with _CountingServer() as server:
        yield server


def test_replay_lua_sends_each_request_once_then_reports_that_it_ran_out(
    counting_server: _CountingServer, tmp_path: Path
) -> None:
    requests = [raw_request(delivery(n), "127.0.0.1") for n in range(60)]
    path = tmp_path / "r.requests"
    write_requests(path, requests)
    done = subprocess.run(
        [
            "wrk",
            "-t2",
            "-c4",
            "-d1s",
            "-s",
            str(BENCH_DIR / "replay.lua"),
            f"http://127.0.0.1:{counting_server.port}/",
            "--",
            str(path),
            "2",
            "once",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    stats = parse_wrk(done.stdout)
    # Every request reached the server exactly once: none lost, none sent twice.
    assert counting_server.bodies == Counter(b'{"n":%d}' % n for n in range(60))
    assert stats.taken == stats.available == 60 and stats.exhausted and stats.wraps == 0


def test_wrk_reports_are_read_from_the_summary_line_or_the_text() -> None:
    text = (
        "  10000 requests in 10.00s, 1.2MB read\n"
        "  Non-2xx or 3xx responses: 3\n"
        "Requests/sec:   1000.00\n"
        "     50%    2.50ms\n     99%   20.00ms\n"
    )
    plain = parse_wrk(text)
    assert (plain.requests, plain.requests_per_s, plain.non_2xx) == (10000, 1000.0, 3)
    assert (plain.p50_ms, plain.p99_ms, plain.taken) == (2.5, 20.0, None)
    summary = {
        "requests": 5000,
        "duration_us": 2_000_000,
        "bytes": 1,
        "errors": {"connect": 0, "read": 1, "write": 0, "status": 2, "timeout": 3},
        "latency_us": {
            "min": 1,
            "mean": 2.0,
            "max": 9000,
            "p50": 1500,
            "p90": 2000,
            "p99": 4000,
            "p999": 8000,
        },
        "replay": {"taken": 5010, "available": 9000, "exhausted_threads": 0, "wraps": 0},
    }
    exact = parse_wrk(text + "HOOKYARD_BENCH " + json.dumps(summary) + "\n")
    assert (exact.requests, exact.requests_per_s, exact.p99_ms) == (5000, 2500.0, 4.0)
    assert (exact.non_2xx, exact.socket_errors, exact.taken, exact.exhausted) == (2, 4, 5010, False)


# -- the report ----------------------------------------------------------------------------


def test_goals_say_by_how_much_a_target_is_missed() -> None:
    def serve(p99: float, sustained_events: int, drain: float) -> LoadResult:
        result = LoadResult(
            "serve-sqlite", "sqlite", 32, WrkStats(requests_per_s=3000, duration_s=10, p99_ms=p99)
        )
        result.ratio_vs_bare = 0.1
        result.processing = Processing(sustained_events, sustained_events, 0, drain, 0)
        return result

    noworker = LoadResult("serve-noworker-sqlite", "sqlite", 32, WrkStats(p99_ms=10.0))
    slow = ProcessResult("processing-c2s-sqlite", "sqlite", "c2s", 100, 1, 1, 0, 1, 2500.0)
    goals = {g.name: g for g in check_goals([serve(30.0, 12_000, 2.0), noworker], [slow])}
    vs_bare = goals["serve, SQLite: acknowledged req/s, % of bare"]
    assert (vs_bare.met, vs_bare.gap) == (False, "29% of the target")
    assert goals["serve, SQLite: p99 ack at 32 connections"].gap == "1.2x the limit"
    assert goals["serve, SQLite: backlog drained after the load"].met  # 2 s is within
    sustained = goals["serve-sqlite: sustained end-to-end events/s"]
    assert (sustained.measured, sustained.met) == (1000.0, False)  # 12,000 / (10 s + 2 s)
    assert goals["serve-sqlite: p99 ack, times serve --no-worker's"].gap == "2.0x the limit"
    assert goals["processing-c2s-sqlite: events/s by one worker"].gap == (
        "50% of the target, 2,500 short"
    )


def test_a_profile_of_a_supervisor_and_its_children_is_summarised_per_process(
    tmp_path: Path,
) -> None:
    import hookyard.bench.profiling as profiling

    mine = profiling._PACKAGE_DIR
    path = tmp_path / "serve.txt"
    path.write_text(
        f'process 1:"python -m hookyard.cli serve";wait (x/sel.py:3) 10\n'
        f'process 1:"python -m hookyard.cli serve";process 2:"python -m hookyard.cli worker";'
        f"run ({mine}worker/runner.py:80);insert (sqlalchemy/sql.py:9) 30\n"
        f'process 1:"python -m hookyard.cli serve";process 2:"python -m hookyard.cli worker";'
        f"run ({mine}worker/runner.py:80) 10\n"
    )
    summary = summarise_profile(path)
    worker = summary["2 -m hookyard.cli worker"]
    assert worker["share"] == [("of all samples", 80.0)]
    assert worker["self"][0] == ("insert (sqlalchemy/sql.py:9)", 75.0)
    assert worker["hookyard"] == [("run (worker/runner.py)", 100.0)]
    assert summary["1 -m hookyard.cli serve"]["share"] == [("of all samples", 20.0)]


def test_customers_are_seeded_before_the_workloads_changes(keys: BenchSecrets) -> None:
    work = workload(keys)
    assert work.customers_changed_at < work.start < datetime.now(UTC) - timedelta(days=1)
