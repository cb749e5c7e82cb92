"""`events`: list, show, replay or purge the inbox's events."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from hookyard.cli.common import load_settings, print_json


def _store() -> Any:
    from hookyard.db.engine import make_engine
    from hookyard.destinations.retention import keep_deliveries
    from hookyard.inbox.store import EventStore

    store = EventStore(make_engine(load_settings().sqlalchemy_url))
    keep_deliveries(store)  # purge: not an event a delivery still waits for
    return store


def cmd_events(args: argparse.Namespace) -> int:
    from hookyard.api.schemas import EventDetail, EventSummary
    from hookyard.inbox.reads import EventFilter

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
            print_json(rows)
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
            print_json(detail)
        else:
            for key, value in detail.items():
                shown = json.dumps(value, indent=2) if isinstance(value, dict | list) else value
                print(f"{key}: {shown}")
        return 0
    if args.action == "replay":
        count = store.replay([args.id]) if args.id else store.replay_matching(flt, args.limit)
        if args.json:
            print_json({"replayed": count})
        else:
            print(f"replayed {count} events")
        return 0 if count or not args.id else 1
    if args.action == "purge":
        # Audit providers' events follow HOOKYARD_AUDIT_RETENTION_DAYS, as in the worker.
        settings, now = load_settings(), datetime.now(UTC)
        cutoff = now - timedelta(days=args.older_than_days)
        audit_days = settings.audit_retention_days
        purged = store.purge_finished(
            cutoff,
            audit_providers=settings.audit_providers,
            audit_older_than=now - timedelta(days=audit_days) if audit_days else None,
        )
        print(f"purged {purged} finished events received before {cutoff:%Y-%m-%d}")
        return 0
    raise AssertionError(args.action)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
