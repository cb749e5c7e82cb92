"""Group commit: concurrent requests share a transaction, and only their own commit answers them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from hookyard.inbox.accept import GroupCommitter, Unstorable
from hookyard.inbox.model import NewEvent
from hookyard.runtime import Runtime


def event(key: str, payload: object = None) -> NewEvent:
    return NewEvent(
        "demo", "generic", None, "t", key, None, None, {}, b"{}", payload, datetime.now(UTC)
    )


def run(runtime: Runtime, *requests: list[NewEvent]) -> list[object]:
    async def scenario() -> list[object]:
        committer = runtime.committer()
        await committer.start()
        try:
            return await asyncio.gather(
                *(committer.accept(r) for r in requests), return_exceptions=True
            )
        finally:
            await committer.stop()

    return asyncio.run(scenario())


def test_concurrent_requests_share_one_commit(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    write = GroupCommitter._write

    async def counting(self, new, rejected, writer):  # type: ignore[no-untyped-def]
        batches.append(len(new))
        return await write(self, new, rejected, writer)

    monkeypatch.setattr(GroupCommitter, "_write", counting)
    answers = run(runtime, *[[event(f"k{i}")] for i in range(50)])
    assert all(isinstance(a, list) and a[0] is not None for a in answers)
    assert sum(batches) == 50 and len(batches) < 50  # grouped, not one commit each


def test_a_request_the_database_refuses_fails_alone(runtime: Runtime) -> None:
    from hookyard.inbox.reads import EventFilter

    good, bad, dup = [event("a")], [event("b", payload=object())], [event("a")]
    answers = run(runtime, good, bad, dup)
    assert isinstance(answers[0], list) and isinstance(answers[0][0], int)
    assert isinstance(answers[1], Unstorable)
    assert answers[2] == [None]  # the same delivery in the same batch: a duplicate
    stored = runtime.store.list_events(EventFilter())
    assert [(e["id"], e["dedup_key"]) for e in stored] == [(answers[0][0], "a")]
