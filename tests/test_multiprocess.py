"""Scaling past one process: API processes and worker processes against one database lose
nothing and do nothing twice (PostgreSQL: SKIP LOCKED claims; SQLite: one writer at a time,
queued by hookyard's writer lock, workers woken over the local bus)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from hookyard.config import Settings
from hookyard.sources import SourceSet
from tests.conftest import process_env
from tests.faults_support import (
    Load,
    assert_acked_are_stored,
    assert_processed_exactly_once,
    effect_pids,
    wait_all_done,
)
from tests.support import Proc, start_server

EVENTS = 3000
CLIENTS = 6


@pytest.mark.slow
def test_two_api_processes_and_two_workers_lose_nothing_and_do_nothing_twice(
    settings: Settings, sources: SourceSet, engine: Engine, tmp_path: Path
) -> None:
    env = process_env(settings)
    procs: list[Proc] = []
    try:
        bases = []
        for i in range(2):
            server, base = start_server(env, tmp_path / f"serve-{i}.log", "--no-worker")
            procs.append(server)
            bases.append(base)
        workers = [Proc(["worker"], env, tmp_path / f"worker-{i}.log") for i in range(2)]
        procs.extend(workers)

        # Clients alternate between the two API processes; the workers drain as events come.
        load = Load(
            sources.by_name()["effects"],
            bases,
            threads=CLIENTS,
            per_thread=EVENTS // CLIENTS,
            seconds=120,
        )
        with load:
            load.join(timeout=150)
        answers = load.snapshot()
        assert len(answers) == EVENTS, f"load stopped early: {load.statuses()}"
        assert load.statuses() == {200: EVENTS}, load.statuses()
        assert {a.body["status"] for a in answers} == {"accepted"}
        assert {a.base for a in answers} == set(bases)
        for worker in workers:
            assert worker.popen.poll() is None, worker.output()[-3000:]

        counts = wait_all_done(engine, timeout=120)
        assert counts == {"done": EVENTS}, counts
        rows = assert_acked_are_stored(engine, answers)
        assert len(rows) == EVENTS
        assert_processed_exactly_once(engine)
        by_pid = effect_pids(engine)
        assert set(by_pid) == {w.popen.pid for w in workers}, f"effects by process: {dict(by_pid)}"
        print(f"effects by worker process: {dict(by_pid)}")
    except BaseException:
        for proc in procs:
            print(f"--- {proc.args}\n{proc.output()[-3000:]}")
        raise
    finally:
        for proc in procs:
            proc.stop()
