"""One backoff for everything that tries again: events, enrichment, e-mail, the outbox and
provider API calls. Exponential, capped, with "equal jitter" (half fixed, half random, so the
retries of many workers spread out), and never sooner than a Retry-After the other side gave.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime


@dataclass(frozen=True, slots=True)
class Backoff:
    max_attempts: int = 8
    base_seconds: float = 2.0
    max_seconds: float = 3600.0

    def delay(
        self,
        attempts: int,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float:
        """Seconds before the next try after `attempts` failed ones: within
        [ceiling/2, ceiling] where ceiling = min(max, base * 2^(attempts-1)), and at least
        `retry_after` (which may exceed the cap: the other side knows best)."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempts - 1))
        delay = ceiling / 2 + rand() * ceiling / 2
        if retry_after is not None and retry_after > delay:
            return float(retry_after)
        return float(delay)

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts

    def next_attempt(
        self, attempts: int, now: datetime, retry_after: float | None = None
    ) -> datetime | None:
        """When to try again, or None: the attempts are used up (dead)."""
        if self.exhausted(attempts):
            return None
        return now + timedelta(seconds=self.delay(attempts, retry_after))


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from now (RFC 9110 §10.2.3): delay-seconds or an HTTP date;
    None when absent or unusable. A date in the past is 0."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
