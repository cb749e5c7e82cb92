"""The `hookyard` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hookyard import bench
from hookyard.cli import accounts, events, listen, notify, processes, sources, sync
from hookyard.config import ConfigError
from hookyard.sync import hubspot_properties


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hookyard", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    processes.add_parsers(sub)
    events.add_parsers(sub)
    sources.add_parsers(sub)
    sync.add_parsers(sub)
    accounts.add_parsers(sub)
    notify.add_parsers(sub)
    listen.add_parser(sub)
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
