"""`hookyard serve` as a supervisor: ingest and worker processes apart, a killed child started
again, nothing acknowledged lost, workers woken within milliseconds, signals passed on."""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select

from hookyard.cli import parser
from hookyard.config import Settings
from hookyard.db.schema import events
from hookyard.sources import SourceSet
from hookyard.supervisor import default_sizes, listening_sockets
from tests.conftest import process_env
from tests.faults_support import (
    Load,
    assert_acked_are_stored,
    assert_processed_exactly_once,
    effect_pids,
    retry_unacknowledged,
    send,
    wait_all_done,
)
from tests.support import children, reported, start_server, wait_for

# -- sizes and flags ------------------------------------------------------------------------


@pytest.mark.parametrize(("cpus", "sizes"), [(1, (1, 1)), (2, (1, 1)), (3, (1, 1)), (8, (4, 4))])
def test_default_sizes_fit_the_machine(cpus: int, sizes: tuple[int, int]) -> None:
    assert default_sizes(cpus) == sizes


def test_serve_takes_processes_and_workers() -> None:
    args = parser().parse_args(["serve", "--processes", "3", "--workers", "2"])
    assert (args.processes, args.workers, args.no_worker) == (3, 2, False)
    with pytest.raises(SystemExit):
        parser().parse_args(["serve", "--processes", "0"])
    with pytest.raises(SystemExit):
        parser().parse_args(["serve", "--workers", "-1"])


def test_several_ingest_sockets_share_one_port() -> None:
    sockets = listening_sockets("127.0.0.1", 0, 3)
    try:
        ports = {s.getsockname()[1] for s in sockets}
        assert len(ports) == 1 and len(sockets) in (1, 3)
        assert all(s.get_inheritable() for s in sockets)
    finally:
        for s in sockets:
            s.close()


# -- processes ------------------------------------------------------------------------------


@pytest.mark.slow
def test_serve_runs_ingest_and_workers_apart_and_passes_sigterm_on(
    settings: Settings, tmp_path: Path
) -> None:
    server, base = start_server(
        process_env(settings), tmp_path / "serve.log", "--processes", "2", "--workers", "2"
    )
    with reported(server):
        wait_for(lambda: len(children(server)) == 4, timeout=30)
        kids = children(server)
        assert sorted(kids) == ["ingest-0", "ingest-1", "worker-0", "worker-1"]
        assert httpx.get(base + "/health").status_code == 200
        server.popen.send_signal(signal.SIGTERM)
        assert server.popen.wait(30) == 0
        for pid in kids.values():
            wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists(), timeout=10)


@pytest.mark.slow
def test_worker_process_is_woken_within_milliseconds(
    settings: Settings, sources: SourceSet, engine: Engine, tmp_path: Path
) -> None:
    # The idle timer is set far away: only the wake-up from the ingest process can be quick.
    env = process_env(settings, HOOKYARD_LEASE_SECONDS=120)
    server, base = start_server(env, tmp_path / "serve.log")
    source = sources.by_name()["effects"]
    with reported(server):
        wait_for(lambda: "worker-0" in children(server), timeout=30)
        time.sleep(1.0)  # the worker is idle, asleep on its timer
        latencies = []
        with httpx.Client(timeout=10) as client:
            for seq in range(5):
                answer = send(client, base, source, seq)
                assert answer.status == 200, answer
                event_id = answer.body["events"][0]

                def processed(event_id: int = event_id) -> float | None:
                    with engine.connect() as conn:
                        row = conn.execute(
                            select(events.c.received_at, events.c.processed_at).where(
                                events.c.id == event_id
                            )
                        ).one()
                    if row.processed_at is None:
                        return None
                    return float((row.processed_at - row.received_at).total_seconds())

                latencies.append(wait_for(processed, timeout=20, interval=0.01))
                time.sleep(0.2)
        print(f"received -> processed: {', '.join(f'{1000 * s:.1f} ms' for s in latencies)}")
        # Milliseconds in practice (see the print); the bound leaves room for a busy machine
        # and is far below the idle timer (30 s here), which would be the only other way.
        assert max(latencies) < 2.0


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["ingest-0", "worker-0"])
def test_kill9_of_a_child_under_load_loses_no_acknowledged_event_and_it_is_restarted(
    victim: str, settings: Settings, sources: SourceSet, engine: Engine, tmp_path: Path
) -> None:
    env = process_env(settings, HOOKYARD_LEASE_SECONDS=2)
    source = sources.by_name()["effects"]
    server, base = start_server(env, tmp_path / "serve.log", "--processes", "1", "--workers", "1")
    with reported(server):
        wait_for(lambda: len(children(server)) == 2, timeout=30)
        before = children(server)
        with Load(source, [base], threads=4, per_thread=600, seconds=90) as load:
            load.wait_acked(200, timeout=60)
            os.kill(before[victim], signal.SIGKILL)
            # The supervisor starts another in its place, and the load goes on through it.
            wait_for(lambda: children(server).get(victim) not in (None, before[victim]), 30)
            acked_at_restart = len(load.acked())
            load.wait_acked(acked_at_restart + 200, timeout=60)
            load.stop()
        answers = load.snapshot()
        statuses = Counter(a.status for a in answers)
        # A killed ingest process drops the connections it held (no answer: the provider
        # retries); nothing is ever answered with an error.
        assert set(statuses) <= {200, None}, statuses
        assert_acked_are_stored(engine, answers)
        retried = retry_unacknowledged(base, answers)
        wait_all_done(engine, timeout=90)
        rows = assert_acked_are_stored(engine, answers + retried)
        assert set(rows) == {a.dedup_key for a in answers}
        assert_processed_exactly_once(engine)
        after = children(server)
        assert after[victim] != before[victim]
        if victim == "worker-0":
            # The new worker finished what the killed one held (after its lease expired).
            assert after["worker-0"] in effect_pids(engine)
        assert re.search(rf"child_exited .*child={victim} .*code=-9", server.output())
        print(f"{dict(statuses)}; retries {Counter(a.body['status'] for a in retried)}")
