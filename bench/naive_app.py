"""The `naive` baseline: the usual FastAPI + SQLAlchemy ORM webhook handler.

One ORM session and one commit per request, in a sync endpoint (FastAPI runs it in its
thread pool): check the shared token, validate the JSON body, add a row, commit, refresh,
answer. A repeated delivery id hits the unique constraint and answers 200 "duplicate".
SQLite runs in WAL with synchronous=FULL, like hookyard, so both pay for durability.

Configured by environment variables (set by `hookyard bench`):
  BENCH_DATABASE_URL  SQLAlchemy URL (sqlite:///... or postgresql+psycopg://...)
  BENCH_TOKEN         the shared token expected in X-Webhook-Token
  BENCH_PATH          the path to answer on (default /webhooks/in/bench)
"""

from __future__ import annotations

import hmac
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException
from sqlalchemy import JSON, DateTime, String, create_engine, event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "sqlite:///naive.sqlite")
TOKEN = os.environ.get("BENCH_TOKEN", "")
PATH = os.environ.get("BENCH_PATH", "/webhooks/in/bench")
# A pooled connection for every request in flight (the bench's 32 connections), so that
# the pool is neither what limits the baseline nor churning connections.
POOL_SIZE = int(os.environ.get("BENCH_POOL_SIZE", "32"))

if DATABASE_URL.startswith("sqlite"):
    engine = create_engine(
        DATABASE_URL,
        pool_size=POOL_SIZE,
        max_overflow=8,
        connect_args={"check_same_thread": False, "timeout": 30},
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

else:
    engine = create_engine(DATABASE_URL, pool_size=POOL_SIZE, max_overflow=8)

SessionLocal = sessionmaker(engine)


class Base(DeclarativeBase):
    pass


class WebhookEvent(Base):
    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(255), unique=True)
    event_type: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    Base.metadata.create_all(engine)
    yield
    engine.dispose()


app = FastAPI(lifespan=lifespan)


def get_db() -> Iterator[Session]:
    with SessionLocal() as session:
        yield session


@app.post(PATH)
def receive_webhook(
    payload: dict[str, Any],
    x_webhook_token: Annotated[str, Header()],
    x_delivery_id: Annotated[str, Header()],
    db: Annotated[Session, Depends(get_db)],
) -> dict[str, Any]:
    if not hmac.compare_digest(x_webhook_token.encode(), TOKEN.encode()):
        raise HTTPException(status_code=401, detail="bad token")
    row = WebhookEvent(
        delivery_id=x_delivery_id,
        event_type=str(payload.get("type", "webhook"))[:200],
        payload=payload,
        received_at=datetime.now(UTC),
    )
    db.add(row)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        return {"status": "duplicate"}
    db.refresh(row)
    return {"status": "accepted", "id": row.id}
