"""`serve` and the processes it runs (`_ingest`, `worker`), and `migrate`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

from hookyard.cli.common import load_settings
from hookyard.config import Settings
from hookyard.sources import load_sources


def cmd_serve(args: argparse.Namespace) -> int:
    """Set up (demo secrets, migrations, demo platforms), bind the port, then supervise the
    ingest and worker processes (hookyard.supervisor) until a signal."""
    from hookyard import supervisor
    from hookyard.db.engine import make_engine
    from hookyard.db.migrate import upgrade
    from hookyard.logs import configure

    settings = load_settings()
    configure(settings.log_level, settings.log_format, process="supervisor")
    processes, workers = _sizes(args, settings)
    metrics_dir = supervisor.operators_metrics_dir()  # None: a private one of this run
    env = dict(os.environ)
    sources = load_sources(settings)  # demo secrets are generated here, once, for every child
    platforms = None
    if args.demo_platforms:
        from hookyard.testing.fakes.demo import DemoPlatforms

        platforms = DemoPlatforms(sources.sources, args.port + 100)
        platforms.start()
        overrides = platforms.settings()
        settings = settings.model_copy(update=overrides)
        env.update({f"HOOKYARD_{name.upper()}": str(v) for name, v in overrides.items()})
    engine = make_engine(settings.sqlalchemy_url)
    upgrade(engine)
    if platforms is not None:
        _ensure_demo_tenant(engine)
    database = engine.dialect.name
    engine.dispose()
    sockets = supervisor.listening_sockets(args.host, args.port, processes)
    port = sockets[0].getsockname()[1]
    url = f"http://{args.host}:{port}"
    if sources.generated:
        print(f"Generated demo secrets (kept in {settings.demo_secrets_file}, shown once):")
        for name, value in sources.generated.items():
            print(f"  {name}={value}")
    print(
        f"hookyard listening on {url} ({database}, {len(sources.sources)} sources;"
        f" {processes} ingest and {workers} worker processes)"
    )
    for source in sources.sources:
        print(f"  {source.config.provider:8} {source.path}  ({source.name})")
    tcr = [s for s in sources.sources if s.config.provider == "tcr" and s.adapter.verifiers]
    if tcr and settings.sources is None:
        print(
            "  TCR signs nothing: its requests carry HOOKYARD_TCR_TOKEN, as TCR is subscribed"
            f" ({url}{tcr[0].path}?token=<HOOKYARD_TCR_TOKEN>, or a basic-auth password)"
        )
    print(
        f"dashboard on {url}/ui/ (log in with HOOKYARD_ADMIN_TOKEN, or as a user with a password)"
    )
    if platforms is not None:
        print(
            f"fake provider platforms on {platforms.base_url}"
            " (/tcr /hubspot /meta /c2s /enrichment, credentials: the fakes' own)"
        )
        threading.Thread(
            target=lambda: print("\n".join("  demo: " + line for line in platforms.connect(url)),
                                 flush=True),
            daemon=True,
        ).start()  # fmt: skip
    sys.stdout.flush()
    children = supervisor.build_children(
        sockets, processes, workers, ["--host", args.host, "--port", str(port)]
    )
    try:
        with supervisor.metrics_directory(metrics_dir) as run_dir:
            return supervisor.Supervisor(children, env, metrics_dir=run_dir).run()
    finally:
        for sock in sockets:
            sock.close()
        if platforms is not None:
            platforms.stop()


def _sizes(args: argparse.Namespace, settings: Settings) -> tuple[int, int]:
    from hookyard.supervisor import default_sizes

    default_processes, default_workers = default_sizes()
    processes = args.processes or settings.processes or default_processes
    if args.no_worker:
        return processes, 0
    workers = args.workers if args.workers is not None else settings.workers
    return processes, default_workers if workers is None else workers


def cmd_ingest(args: argparse.Namespace) -> int:
    """One ingest process of `serve`: the webhooks, the management API and the dashboard on
    the socket the supervisor bound (no workers: they are processes of their own)."""
    import socket

    import uvicorn

    from hookyard.app import create_app
    from hookyard.logs import configure
    from hookyard.runtime import Runtime
    from hookyard.supervisor import child_of_supervisor, operators_metrics_dir

    child_of_supervisor()
    operators_metrics_dir()  # a PROMETHEUS_MULTIPROC_DIR that is no directory: say so, exit 2
    settings = load_settings()
    configure(settings.log_level, settings.log_format, process=settings.process_name)
    runtime = Runtime.build(settings, load_sources(settings, create_secrets=False))
    app = create_app(runtime, run_workers=False)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        lifespan="on",
    )
    try:
        uvicorn.Server(config).run(sockets=[socket.socket(fileno=args.fd)])
    finally:
        runtime.close()
    return 0


def _ensure_demo_tenant(engine: Any) -> None:
    """The demo's tenant (`X-Customer-ID: demo`), for creating customers and brands."""
    from hookyard.accounts import identity

    with engine.connect() as conn:
        known = identity.find_tenant(conn, "demo")
    if known is None:
        identity.create_tenant(engine, "demo", "Demo tenant")


def cmd_worker(args: argparse.Namespace) -> int:
    from hookyard.supervisor import child_of_supervisor, operators_metrics_dir

    # Before the metrics are imported (they open their files there): a PROMETHEUS_MULTIPROC_DIR
    # that is no directory is a configuration error (exit 2), not a traceback.
    operators_metrics_dir()
    from hookyard.logs import configure
    from hookyard.runtime import Runtime

    child_of_supervisor()
    settings = load_settings()
    configure(settings.log_level, settings.log_format, process=settings.process_name)
    sources = load_sources(settings, create_secrets=False)
    runtime = Runtime.build(settings, sources, acknowledges=False)
    if args.once:
        print(f"processed {runtime.make_worker().drain()} events")
        return 0
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    runtime.forward_live_changes()  # SQLite: to the API processes' live sockets
    runtime.start_workers(args.threads)
    try:
        stop.wait()
    finally:
        runtime.close()  # lets running handlers finish their transaction
    return 0


def cmd_migrate(_: argparse.Namespace) -> int:
    from hookyard.db.engine import make_engine
    from hookyard.db.migrate import upgrade

    engine = make_engine(load_settings().sqlalchemy_url)
    upgrade(engine)
    print("database is at the latest revision")
    return 0


def _at_least(minimum: int) -> Any:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return number

    return parse


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser(
        "serve", help="the gateway: ingest and API processes beside worker processes (migrates)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--processes",
        type=_at_least(1),
        help="ingest and API processes sharing the port (HOOKYARD_PROCESSES; default: half the"
        " CPUs, at least 1)",
    )
    serve.add_argument(
        "--workers",
        type=_at_least(0),
        help="worker processes (HOOKYARD_WORKERS; default: half the CPUs, at least 1; 0: none)",
    )
    serve.add_argument("--no-worker", action="store_true", help="no workers (--workers 0)")
    serve.add_argument(
        "--demo-platforms",
        action="store_true",
        help="also run fake TCR/HubSpot/Meta/C2S platforms on PORT+100, wired to this gateway",
    )
    serve.set_defaults(func=cmd_serve)

    ingest = sub.add_parser("_ingest", help=argparse.SUPPRESS)  # a child of `serve`
    ingest.add_argument("--fd", type=int, required=True, help="the listening socket")
    ingest.add_argument("--host")
    ingest.add_argument("--port", type=int)
    ingest.set_defaults(func=cmd_ingest)

    worker = sub.add_parser("worker", help="process events (no HTTP)")
    worker.add_argument("--threads", type=int, default=None)
    worker.add_argument("--once", action="store_true", help="drain what is due, then exit")
    worker.set_defaults(func=cmd_worker)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
