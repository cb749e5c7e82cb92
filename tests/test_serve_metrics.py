"""`/metrics` under `hookyard serve`: the counters of every process of the run (workers
included, ingest processes summed), the gauges read from the database once, and the run's
private metrics directory gone after a clean stop."""

from __future__ import annotations

import os
import signal
import stat
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from hookyard.config import MULTIPROCESS_DIR, Settings
from hookyard.metrics import ALERT_GAUGES
from hookyard.sources import SourceSet
from tests.conftest import process_env
from tests.faults_support import post, send, wait_all_done
from tests.support import (
    SECRETS,
    Proc,
    children,
    delivery,
    environ_of,
    hookyard,
    reported,
    start_server,
    wait_for,
)

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]

DB_GAUGES = ("hookyard_queue_depth", "hookyard_oldest_pending_age_seconds", *ALERT_GAUGES)


def scrape(base: str) -> tuple[Samples, list[str]]:
    """One scrape on a new connection: the samples by name and labels, and the family names
    in the order shown (a family shown twice is there twice)."""
    answer = httpx.get(
        base + "/metrics", headers={"Authorization": f"Bearer {SECRETS['admin']}"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    samples: Samples = defaultdict(dict)
    names = []
    for family in text_string_to_metric_families(answer.text):
        names.append(family.name)
        for sample in family.samples:
            samples[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return samples, names


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for key, v in samples.get(name, {}).items() if wanted <= set(key))


def run_dir(server: Proc) -> Path:
    dirs = {environ_of(pid).get(MULTIPROCESS_DIR) for pid in children(server).values()}
    assert len(dirs) == 1 and None not in dirs, dirs
    return Path(str(dirs.pop()))


def accepted_in_file(path: Path, source: str) -> float:
    """What one process's counter file holds of hookyard_events_accepted_total{source}."""
    found = 0.0
    for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
        if key.startswith('["hookyard_events_accepted"') and f'"source": "{source}"' in key:
            found += value
    return found


def stop_cleanly(server: Proc) -> None:
    server.popen.send_signal(signal.SIGTERM)
    assert server.popen.wait(30) == 0


@pytest.mark.slow
def test_worker_counters_reach_metrics_and_outlive_a_worker_restart(
    settings: Settings, sources: SourceSet, engine: Engine, tmp_path: Path
) -> None:
    server, base = start_server(
        process_env(settings), tmp_path / "serve.log", "--processes", "1", "--workers", "1"
    )
    with reported(server):
        wait_for(lambda: len(children(server)) == 2, timeout=30)
        metrics_dir = run_dir(server)
        mode = metrics_dir.stat()
        assert stat.S_IMODE(mode.st_mode) == 0o700 and mode.st_uid == os.getuid()
        by_name = sources.by_name()
        with httpx.Client(timeout=10) as client:
            for seq in range(5):
                assert send(client, base, by_name["effects"], seq).status == 200
            for seq in range(2):  # its handler always fails: 3 attempts each, then dead
                assert send(client, base, by_name["poison"], 100 + seq).status == 200
        wait_all_done(engine)

        def counted() -> Samples | None:
            samples, _ = scrape(base)
            dead = total(samples, "hookyard_events_dead_total", source="poison")
            return samples if dead == 2 else None

        samples = wait_for(counted, timeout=20, interval=0.2)
        # The ingest process runs no handler: these were counted in the worker process.
        assert total(samples, "hookyard_events_processed_total", source="effects") == 5
        assert total(samples, "hookyard_events_failed_total", source="poison") == 6
        assert total(samples, "hookyard_events_accepted_total", source="effects") == 5
        worker = children(server)["worker-0"]
        assert (metrics_dir / f"counter_{worker}.db").exists()

        # A worker that dies leaves its counts in the run's totals (counters never go back).
        os.kill(worker, signal.SIGKILL)
        wait_for(lambda: children(server).get("worker-0") not in (None, worker), timeout=30)
        with httpx.Client(timeout=10) as client:
            assert send(client, base, by_name["effects"], 5).status == 200
        wait_all_done(engine)

        def six_processed() -> Samples | None:
            samples, _ = scrape(base)
            done = total(samples, "hookyard_events_processed_total", source="effects")
            return samples if done == 6 else None

        samples = wait_for(six_processed, timeout=20, interval=0.2)
        assert total(samples, "hookyard_events_dead_total", source="poison") == 2

        stop_cleanly(server)
        assert not metrics_dir.exists()


@pytest.mark.slow
def test_every_ingest_process_shows_the_same_totals_and_the_database_gauges_once(
    settings: Settings, sources: SourceSet, engine: Engine, tmp_path: Path
) -> None:
    server, base = start_server(
        process_env(settings), tmp_path / "serve.log", "--processes", "2", "--workers", "1"
    )
    source = sources.by_name()["effects"]
    requests = 24
    with reported(server):
        wait_for(lambda: len(children(server)) == 3, timeout=30)
        metrics_dir = run_dir(server)
        for seq in range(requests):  # a new connection each: the kernel spreads them
            with httpx.Client(timeout=10) as client:
                assert post(client, base, delivery(source, seq)).status == 200
        wait_all_done(engine)
        kids = children(server)
        shares = [
            accepted_in_file(metrics_dir / f"counter_{kids[name]}.db", "effects")
            for name in ("ingest-0", "ingest-1")
        ]
        assert sum(shares) == requests and all(shares), shares  # both took some
        for _ in range(8):  # new connections too: answered by either process
            samples, names = scrape(base)
            assert total(samples, "hookyard_events_accepted_total", source="effects") == requests
            assert total(samples, "hookyard_webhooks_received_total", source="effects") == requests
            assert total(samples, "hookyard_ack_latency_seconds_count") >= requests
            assert total(samples, "hookyard_events_processed_total", source="effects") == requests
            # Read from the database by the answering process alone: shown once, not per
            # process of the run.
            for gauge in DB_GAUGES:
                assert names.count(gauge) == 1, (gauge, names.count(gauge))
            assert list(samples["hookyard_queue_depth"].values()) == [0]
            duplicated = {n for n in names if names.count(n) > 1}
            assert not duplicated, duplicated
        stop_cleanly(server)
        assert not metrics_dir.exists()


@pytest.mark.slow
def test_workers_started_apart_count_into_the_operators_directory(
    settings: Settings, sources: SourceSet, engine: Engine, tmp_path: Path
) -> None:
    """`serve --no-worker` beside a `hookyard worker` of the service manager's, both given one
    PROMETHEUS_MULTIPROC_DIR: the worker's counts are on /metrics; the directory is the
    operator's, so `serve` leaves it in place."""
    shared = tmp_path / "prometheus"
    shared.mkdir(mode=0o700)
    env = process_env(settings, **{MULTIPROCESS_DIR: str(shared)})
    server, base = start_server(env, tmp_path / "serve.log", "--processes", "1", "--no-worker")
    worker = Proc(["worker"], env, tmp_path / "worker.log")
    with reported(server, worker, tail=3000):
        assert run_dir(server) == shared
        with httpx.Client(timeout=10) as client:
            for seq in range(3):
                assert send(client, base, sources.by_name()["effects"], seq).status == 200
        wait_all_done(engine)

        def counted() -> bool:
            samples, _ = scrape(base)
            return total(samples, "hookyard_events_processed_total", source="effects") == 3

        wait_for(counted, timeout=20, interval=0.2)
        assert (shared / f"counter_{worker.popen.pid}.db").exists()
        # The supervisor counts nothing, so it has no file there.
        assert not list(shared.glob(f"*_{server.popen.pid}.db"))
        stop_cleanly(server)
        assert shared.is_dir()


@pytest.mark.parametrize(
    "command",
    [("serve", "--port", "0", "--processes", "1", "--workers", "0"), ("worker", "--once")],
    ids=["serve", "worker"],
)
def test_a_metrics_directory_that_is_not_there_is_refused(
    settings: Settings, tmp_path: Path, command: tuple[str, ...]
) -> None:
    missing = tmp_path / "nowhere"
    env = process_env(settings, **{MULTIPROCESS_DIR: str(missing)})
    result = hookyard(env, *command)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{MULTIPROCESS_DIR}={missing} is not a directory" in result.stderr
    assert "Traceback" not in result.stderr
