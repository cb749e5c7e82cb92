"""Diagnosis: how long a delivery claim takes on PostgreSQL right after a burst of new
deliveries, before any ANALYZE has seen them (docs/performance.md).

Creates a fresh database, migrates it, writes `--deliveries` pending deliveries to one
destination in one transaction, then claims them `--batch` at a time with the deliverer's own
claim (`DeliveryJob._claim`) and marks each batch delivered, until none is left. Prints the
mean, median and slowest claim. `--index before` first puts back the due index of migration
0020 (`next_attempt_at, id`), for the comparison; `--entity` gives every delivery an entity key
(as an `ordered` destination's have); `--analyze` runs ANALYZE after the burst.

    .venv/bin/python bench/claim_plan.py [--index before|after] [--entity] [--analyze]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, insert, text

from hookyard.bench.databases import Databases
from hookyard.db.migrate import upgrade
from hookyard.destinations.config import DestinationConfig, Destinations
from hookyard.destinations.deliver import DeliveryJob
from hookyard.destinations.tables import deliveries, destinations
from hookyard.providers.signing import standard_webhooks_secret

DESTINATION = "bench-claims"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--index", choices=["before", "after"], default="after")
    parser.add_argument("--entity", action="store_true")
    parser.add_argument("--analyze", action="store_true")
    args = parser.parse_args()
    databases = Databases(Path(tempfile.gettempdir()), args.pg_url)
    with databases.fresh("postgresql", "claims") as url:
        engine = create_engine(url)
        upgrade(engine)
        now = datetime.now(UTC)
        with engine.begin() as tx:
            if args.index == "before":
                tx.execute(text("DROP INDEX ix_destination_deliveries_due"))
                tx.execute(
                    text(
                        "CREATE INDEX ix_destination_deliveries_due ON destination_deliveries "
                        "(next_attempt_at, id) WHERE status IN ('pending', 'failed')"
                    )
                )
            tx.execute(
                insert(destinations).values(
                    name=DESTINATION, tenant=None, url="http://127.0.0.1:9/", state="active",
                    circuit="closed", consecutive_failures=0, state_changed_at=now,
                    updated_at=now,
                )
            )  # fmt: skip
            tx.execute(
                insert(deliveries),
                [
                    {"destination": DESTINATION, "event_id": i, "tenant": None,
                     "source": "bench", "event_type": "bench.claimed",
                     "entity_key": f"lead:{i}" if args.entity else None, "status": "pending",
                     "attempts": 0, "next_attempt_at": now, "replay_count": 0,
                     "created_at": now}
                    for i in range(1, args.deliveries + 1)
                ],
            )  # fmt: skip
        if args.analyze:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE destination_deliveries"))
        configured = DestinationConfig(
            name=DESTINATION,
            url="http://127.0.0.1:9/",
            secret=standard_webhooks_secret(),
            sources=("bench",),
        )
        job = DeliveryJob(engine, Destinations((configured,)), batch_size=args.batch)
        done = job.queue.finish_statement({"status": "delivered", "finished_at": now})
        took: list[float] = []
        while True:
            started = time.perf_counter()
            rows = job._claim("bench", [DESTINATION], args.batch)
            took.append(time.perf_counter() - started)
            if not rows:
                break
            with engine.begin() as tx:
                tx.execute(done, {"ids": [r["id"] for r in rows], "owner": "bench"})
        job.close()
        engine.dispose()
    ms = [1000 * t for t in took]
    print(
        f"{len(ms)} claims of up to {args.batch} (index {args.index}, entity keys "
        f"{'yes' if args.entity else 'no'}, ANALYZE {'yes' if args.analyze else 'no'}): "
        f"mean {statistics.mean(ms):.1f} ms, median {statistics.median(ms):.1f} ms, "
        f"slowest {max(ms):.1f} ms"
    )


if __name__ == "__main__":
    main()
