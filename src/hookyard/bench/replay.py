"""Requests made beforehand, for `bench/replay.lua` to send.

wrk's Lua cannot compute an HMAC, so signed deliveries are made here and written to a file
wrk loads: a header line `HOOKYARD-REQUESTS 1 <count>`, then each request as its length in
bytes on a line of its own followed by the raw HTTP/1.1 request (with `Host` and
`Content-Length`). Each wrk thread keeps every n-th request (thread k of n: requests k, k+n,
…), so all threads go through the stream in the same order, and sends each one once: a thread
that runs out stops and says so instead of sending a request twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from hookyard.testing.simulate import Delivery

MAGIC = "HOOKYARD-REQUESTS 1"


def raw_request(delivery: Delivery, host: str) -> bytes:
    """`delivery` as bytes on the wire, addressed to `host` (as in the URL it was signed for)."""
    parts = urlsplit(delivery.url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"{delivery.method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [
        f"{name}: {value}"
        for name, value in delivery.headers.items()
        if name.lower() not in ("host", "content-length")
    ]
    lines.append(f"Content-Length: {len(delivery.body)}")
    head = "\r\n".join(lines) + "\r\n\r\n"
    return head.encode("latin-1") + delivery.body


def write_requests(path: Path, requests: Sequence[bytes]) -> int:
    """Write the file `replay.lua` reads; its size in bytes."""
    with path.open("wb") as out:
        out.write(f"{MAGIC} {len(requests)}\n".encode())
        for request in requests:
            out.write(b"%d\n" % len(request))
            out.write(request)
        return out.tell()


def read_requests(path: Path, thread: int = 0, threads: int = 1) -> list[bytes]:
    """The requests of one wrk thread, read as `replay.lua` reads them."""
    with path.open("rb") as source:
        magic, _, count = source.readline().decode().strip().rpartition(" ")
        if magic != MAGIC or not count.isdigit():
            raise ValueError(f"{path} is not a requests file")
        mine: list[bytes] = []
        for index in range(int(count)):
            size = int(source.readline())
            if index % threads == thread:
                mine.append(source.read(size))
            else:
                source.seek(size, 1)
        return mine


def requests_needed(
    rate: float, seconds: float, *, headroom: float = 1.5, floor: int = 2000, cap: int
) -> int:
    """How many requests to make for `seconds` at about `rate` per second."""
    return max(1, min(cap, max(floor, int(rate * seconds * headroom))))


def body_sizes(requests: Iterable[bytes]) -> tuple[int, int, float]:
    """(smallest, largest, mean) size of the requests, headers included."""
    sizes = [len(r) for r in requests]
    if not sizes:
        return 0, 0, 0.0
    return min(sizes), max(sizes), sum(sizes) / len(sizes)
