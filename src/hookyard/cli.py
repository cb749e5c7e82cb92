"""The `hookyard` command."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from hookyard import bench
from hookyard.config import ConfigError, Settings
from hookyard.sources import describe, load_sources
from hookyard.sync import hubspot_properties


def _settings() -> Settings:
    return Settings()


def _print_json(value: Any) -> None:
    print(json.dumps(value, default=_json_default, indent=2))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(type(value).__name__)


def cmd_serve(args: argparse.Namespace) -> int:
    """Set up (demo secrets, migrations, demo platforms), bind the port, then supervise the
    ingest and worker processes (hookyard.supervisor) until a signal."""
    from hookyard import supervisor
    from hookyard.db.engine import make_engine
    from hookyard.db.migrate import upgrade
    from hookyard.logs import configure

    settings = _settings()
    configure(settings.log_level, settings.log_format, process="supervisor")
    processes, workers = _sizes(args, settings)
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
        return supervisor.Supervisor(children, env).run()
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
    from hookyard.supervisor import child_of_supervisor

    child_of_supervisor()
    settings = _settings()
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
    from hookyard.logs import configure
    from hookyard.runtime import Runtime
    from hookyard.supervisor import child_of_supervisor

    child_of_supervisor()
    settings = _settings()
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

    engine = make_engine(_settings().sqlalchemy_url)
    upgrade(engine)
    print("database is at the latest revision")
    return 0


def _store() -> Any:
    from hookyard.db.engine import make_engine
    from hookyard.inbox.store import EventStore

    return EventStore(make_engine(_settings().sqlalchemy_url))


def cmd_events(args: argparse.Namespace) -> int:
    from hookyard.api.schemas import EventDetail, EventSummary
    from hookyard.inbox.store import EventFilter

    store = _store()
    flt = EventFilter(
        args.source,
        args.provider,
        args.type,
        args.status,
        getattr(args, "since", None),
        getattr(args, "until", None),
    )
    if args.action == "list":
        rows = [
            EventSummary.model_validate(r).model_dump(mode="json")
            for r in store.list_events(flt, limit=args.limit, before_id=args.before_id)
        ]
        if args.json:
            _print_json(rows)
            return 0
        print(f"{'ID':>8}  {'STATUS':10} {'ATT':>3}  {'SOURCE':14} {'TYPE':34} RECEIVED")
        for r in rows:
            print(
                f"{r['id']:>8}  {r['status']:10} {r['attempts']:>3}  {r['source'][:14]:14} "
                f"{r['event_type'][:34]:34} {r['received_at']}"
            )
        return 0
    if args.action == "show":
        row = store.get(args.id)
        if row is None:
            print(f"no event {args.id}", file=sys.stderr)
            return 1
        detail = EventDetail.from_row(row).model_dump(mode="json")
        if args.json:
            _print_json(detail)
        else:
            for key, value in detail.items():
                shown = json.dumps(value, indent=2) if isinstance(value, dict | list) else value
                print(f"{key}: {shown}")
        return 0
    if args.action == "replay":
        count = store.replay([args.id]) if args.id else store.replay_matching(flt, args.limit)
        if args.json:
            _print_json({"replayed": count})
        else:
            print(f"replayed {count} events")
        return 0 if count or not args.id else 1
    if args.action == "purge":
        cutoff = datetime.now(UTC) - timedelta(days=args.older_than_days)
        print(
            f"purged {store.purge_finished(cutoff)} finished events"
            f" received before {cutoff:%Y-%m-%d}"
        )
        return 0
    raise AssertionError(args.action)


def cmd_sources(args: argparse.Namespace) -> int:
    sources = load_sources(_settings(), create_secrets=False)
    rows = describe(sources.sources)
    if args.json:
        _print_json(rows)
    else:
        for r in rows:
            print(f"{r['name']:16} {r['provider']:8} {r['path']:32} {r['tenant'] or '-'}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    import httpx

    from hookyard.testing.simulate import build_delivery

    sources = load_sources(_settings(), create_secrets=False)
    candidates = [
        s
        for s in sources.sources
        if (args.source and s.name == args.source)
        or (not args.source and args.provider in (s.config.provider, s.name))
    ]
    if not candidates:
        print(
            f"no source for {args.source or args.provider!r}; see `hookyard sources list`",
            file=sys.stderr,
        )
        return 2
    source = candidates[0]
    if args.provider == "tcr" and args.event and not args.source:
        category = (
            "campaigns"
            if "CAMPAIGN" in args.event
            else (
                "vetting"
                if any(w in args.event for w in ("VETTING", "AUTHPLUS", "EVP", "2FA"))
                else "brands"
            )
        )
        source = next((s for s in candidates if s.path.endswith(category)), source)
    interval = 1.0 / args.rate if args.rate else 0.0
    counts: dict[int, int] = {}
    with httpx.Client(timeout=10) as client:
        for seq in range(args.count):
            started = time.perf_counter()
            d = build_delivery(source, args.event, args.url, seq)
            try:
                response = client.request(d.method, d.url, headers=d.headers, content=d.body)
            except httpx.HTTPError as exc:
                print(f"{seq}: {type(exc).__name__}: {exc}", file=sys.stderr)
                counts[0] = counts.get(0, 0) + 1
                continue
            counts[response.status_code] = counts.get(response.status_code, 0) + 1
            if args.count <= 10 or response.status_code >= 300:
                print(f"{seq}: {response.status_code} {response.text[:200]}")
            if interval:
                time.sleep(max(0.0, interval - (time.perf_counter() - started)))
    print(
        "sent",
        args.count,
        "to",
        source.path,
        "statuses:",
        ", ".join(f"{k}x{v}" for k, v in sorted(counts.items())),
    )
    return 0 if set(counts) <= {200} else 1


def _sync_services() -> Any:
    from hookyard.db.engine import make_engine
    from hookyard.db.migrate import upgrade
    from hookyard.inbox.store import EventStore
    from hookyard.sync.services import SyncServices

    settings = _settings()
    engine = make_engine(settings.sqlalchemy_url)
    upgrade(engine)
    sources = load_sources(settings, create_secrets=False)
    return SyncServices(settings, EventStore(engine), sources.sources)


def cmd_reconcile(args: argparse.Namespace) -> int:
    services = _sync_services()
    try:
        reconcilers = services.reconcilers(args.provider, args.scope)
    except LookupError as exc:
        print(f"hookyard: {exc}", file=sys.stderr)
        return 2
    results = [services.reconcile(r, dry_run=args.dry_run) for r in reconcilers]
    if args.json:
        _print_json(
            [
                {"run": r.run_id, "job": r.job, "checked": r.checked, "fed": r.fed,
                 "drift": [d.as_dict() for d in r.drift], "error": r.error}
                for r in results
            ]
        )  # fmt: skip
    else:
        for r in results:
            verb = "would repair" if args.dry_run else f"fed {r.fed} repairs for"
            print(f"{r.job}: checked {r.checked}, drift {len(r.drift)}, {verb} it (run {r.run_id})")
            for d in r.drift:
                print(f"  {d.entity:40} {d.field:18} ours={d.ours!r} theirs={d.theirs!r}")
            if r.error:
                print(f"  failed: {r.error}")
    services.close()
    return 0 if all(r.ok for r in results) else 1


def cmd_tcr(args: argparse.Namespace) -> int:
    from hookyard.http import ApiError
    from hookyard.sync.tcr import subscribe_all

    services = _sync_services()
    if services.tcr is None:
        print("hookyard: set HOOKYARD_TCR_API_KEY and HOOKYARD_TCR_API_SECRET", file=sys.stderr)
        return 2
    try:
        if args.action == "subscribe":
            url = args.url or services.settings.tcr_subscribe_url
            if not url:
                print("hookyard: give --url or set HOOKYARD_TCR_SUBSCRIBE_URL", file=sys.stderr)
                return 2
            results = subscribe_all(services.tcr, url, services.sources)
            for sub in results:
                print(f"{sub.category:9} {sub.status:10} {sub.endpoint} {sub.error or ''}")
            return 0 if all(r.status != "failed" for r in results) else 1
        for found in services.tcr.subscriptions():
            endpoint = str(found.get("webhookEndpoint", "")).split("?")[0]  # not the token
            print(f"{found.get('eventCategory', '?'):9} {endpoint}")
        return 0
    except ApiError as exc:
        print(f"hookyard: {exc}", file=sys.stderr)
        return 1
    finally:
        services.close()


def _engine() -> Any:
    from hookyard.db.engine import make_engine
    from hookyard.db.migrate import upgrade

    engine = make_engine(_settings().sqlalchemy_url)
    upgrade(engine)
    return engine


def cmd_tenants(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import IntegrityError

    from hookyard.accounts import identity

    engine = _engine()
    if args.action == "create":
        try:
            identity.create_tenant(engine, args.id, args.name or args.id, args.ban)
        except IntegrityError:
            print(f"hookyard: tenant {args.id!r} (or its BAN) exists", file=sys.stderr)
            return 1
        print(f"tenant {args.id} created")
        return 0
    for t in identity.list_tenants(engine):
        print(f"{t['id']:20} {t['ban'] or '-':12} {t['name']}")
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    import getpass

    from sqlalchemy.exc import IntegrityError

    from hookyard.accounts import identity

    engine = _engine()
    if args.action == "list":
        for u in identity.list_users(engine, args.tenant):
            print(f"{u['id']:5} {u['role']:10} {u['tenant'] or '-':16} {u['email']}")
        return 0
    password = None
    if args.password:
        password = getpass.getpass("password (12 characters or more): ")
        if len(password) < 12:
            print("hookyard: the password needs 12 characters or more", file=sys.stderr)
            return 2
    try:
        user_id = identity.create_user(
            engine, args.email, identity.Role(args.role), args.tenant, password, args.name
        )
    except (ValueError, IntegrityError) as exc:
        reason = "a user with that e-mail exists" if isinstance(exc, IntegrityError) else exc
        print(f"hookyard: {reason}", file=sys.stderr)
        return 2
    print(f"user {user_id} created ({args.role}, tenant {args.tenant or '-'})")
    if args.api_key:
        _, key = identity.create_api_key(engine, user_id, args.api_key)
        print(f"API key (shown once): {key}")
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hookyard", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

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

    events = sub.add_parser("events", help="list, show, replay or purge events")
    actions = events.add_subparsers(dest="action", required=True)
    for name in ("list", "show", "replay", "purge"):
        a = actions.add_parser(name)
        a.add_argument("--json", action="store_true")
        a.add_argument("--source")
        a.add_argument("--provider")
        a.add_argument("--type")
        a.add_argument("--status")
        a.add_argument("--limit", type=int, default=50 if name == "list" else 1000)
        if name == "list":
            a.add_argument("--before-id", type=int)
        if name in ("show", "replay"):
            a.add_argument("id", type=int, nargs="?" if name == "replay" else None)
        if name == "purge":
            a.add_argument("--older-than-days", type=int, required=True)
    events.set_defaults(func=cmd_events)

    sources = sub.add_parser("sources", help="the configured sources")
    sources.add_argument("action", choices=["list"])
    sources.add_argument("--json", action="store_true")
    sources.set_defaults(func=cmd_sources)

    sim = sub.add_parser("simulate", help="send correctly signed, realistic webhooks")
    sim.add_argument("provider", help="generic, hubspot, meta, c2s, tcr (or a source name)")
    sim.add_argument("event", nargs="?", help="event type (default: a typical one)")
    sim.add_argument("--source", help="the source to send to, by name")
    sim.add_argument("--count", type=int, default=1)
    sim.add_argument("--rate", type=float, default=0.0, help="requests per second (0: as fast)")
    sim.add_argument("--url", default="http://127.0.0.1:8000")
    sim.set_defaults(func=cmd_simulate)

    rec = sub.add_parser("reconcile", help="poll a provider now; repair and print the drift")
    rec.add_argument("provider", choices=["tcr", "hubspot", "meta"])
    rec.add_argument("--dry-run", action="store_true", help="print the drift, repair nothing")
    rec.add_argument(
        "--scope", default="all", help="all (default), or a scheduled job's: review, active, open"
    )
    rec.add_argument("--json", action="store_true")
    rec.set_defaults(func=cmd_reconcile)

    tcr = sub.add_parser("tcr", help="TCR webhook subscriptions")
    tcr.add_argument("action", choices=["subscriptions", "subscribe"])
    tcr.add_argument(
        "--url", help="hookyard's public base URL (default HOOKYARD_TCR_SUBSCRIBE_URL)"
    )
    tcr.set_defaults(func=cmd_tcr)

    tenants = sub.add_parser("tenants", help="list or create tenants")
    tenants.add_argument("action", choices=["list", "create"])
    tenants.add_argument("id", nargs="?", help="create: the tenant id (a-z, 0-9, -, _)")
    tenants.add_argument("--name")
    tenants.add_argument("--ban", help="the tenant's BAN (two letters, nine digits)")
    tenants.set_defaults(func=cmd_tenants)

    users = sub.add_parser("users", help="list or create users (and an API key)")
    users.add_argument("action", choices=["list", "create"])
    users.add_argument("email", nargs="?")
    users.add_argument("--role", choices=["superadmin", "admin", "member", "viewer"])
    users.add_argument("--tenant", help="the user's tenant (none for a superadmin)")
    users.add_argument("--name")
    users.add_argument("--password", action="store_true", help="ask for a password (login)")
    users.add_argument("--api-key", metavar="NAME", help="also create an API key, shown once")
    users.set_defaults(func=cmd_users)

    bench.add_parser(sub)
    hubspot_properties.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "events" and args.action == "replay" and not args.id and not args.status:
        args.status = "dead"
    if args.command == "tenants" and args.action == "create" and not args.id:
        print("hookyard: tenants create ID [--name N] [--ban BAN]", file=sys.stderr)
        return 2
    if args.command == "users" and args.action == "create" and not (args.email and args.role):
        print("hookyard: users create EMAIL --role R [--tenant T]", file=sys.stderr)
        return 2
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        print(f"hookyard: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
