"""`sources` (the configured sources) and `simulate` (signed webhooks sent to one)."""

from __future__ import annotations

import argparse
import sys
import time

from hookyard.cli.common import load_settings, print_json
from hookyard.sources import describe, load_sources


def cmd_sources(args: argparse.Namespace) -> int:
    sources = load_sources(load_settings(), create_secrets=False)
    rows = describe(sources.sources)
    if args.json:
        print_json(rows)
    else:
        for r in rows:
            print(f"{r['name']:16} {r['provider']:8} {r['path']:32} {r['tenant'] or '-'}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    import httpx

    from hookyard.testing.simulate import build_delivery

    sources = load_sources(load_settings(), create_secrets=False)
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


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
