"""`reconcile` (poll a provider, repair the drift) and `tcr` (TCR's webhook subscriptions)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hookyard.cli.common import load_settings, print_json
from hookyard.sources import load_sources


def _sync_services() -> Any:
    from hookyard.db.engine import make_engine
    from hookyard.db.migrate import upgrade
    from hookyard.destinations.fanout import attach
    from hookyard.inbox.store import EventStore
    from hookyard.sync.services import SyncServices

    settings = load_settings()
    engine = make_engine(settings.sqlalchemy_url)
    upgrade(engine)
    sources = load_sources(settings, create_secrets=False)
    store = EventStore(engine)
    attach(store, sources.destinations)  # polled events reach the destinations too
    return SyncServices(settings, store, sources.sources)


def cmd_reconcile(args: argparse.Namespace) -> int:
    services = _sync_services()
    try:
        reconcilers = services.reconcilers(args.provider, args.scope)
    except LookupError as exc:
        print(f"hookyard: {exc}", file=sys.stderr)
        return 2
    results = [services.reconcile(r, dry_run=args.dry_run) for r in reconcilers]
    if args.json:
        print_json(
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


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
