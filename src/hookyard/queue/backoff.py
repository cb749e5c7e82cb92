"""One backoff for everything that tries again: events, enrichment, e-mail, the outbox and
provider API calls. Exponential, capped, with "equal jitter" (half fixed, half random, so the
retries of many workers spread out), and never sooner than a Retry-After the other side gave.
"""

from __future__ import annotations

import math
import random
import re
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
        try:
            ceiling = min(self.max_seconds, math.ldexp(self.base_seconds, max(0, attempts - 1)))
        except OverflowError:  # 2^1024 and more (a generous max_attempts): the cap
            ceiling = self.max_seconds
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


# The longest wait taken from a Retry-After (2^31 s, about 68 years: what RFC 9111 §1.2.2 has
# caches assume of a larger delta-seconds). Unbounded, a server's "99999999999999" would
# overflow the datetime of the next attempt.
MAX_RETRY_AFTER_SECONDS = float(2**31)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from now (RFC 9110 §10.2.3): delay-seconds or an HTTP date;
    None when absent or unusable. A date in the past is 0; at most MAX_RETRY_AFTER_SECONDS."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    now = now or datetime.now(UTC)
    try:
        when = parsedate_to_datetime(value)
        if (rfc850 := _RFC850_YEAR.match(value)) is not None:
            when = when.replace(year=_two_digit_year(int(rfc850[1]), now.year))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - now).total_seconds()
    return min(max(0.0, seconds), MAX_RETRY_AFTER_SECONDS)


# The obsolete RFC 850 date ("Sunday, 06-Nov-94 08:49:37 GMT"), which a recipient must still
# accept, has a two-digit year.
_RFC850_YEAR = re.compile(r"[A-Za-z]+, *[0-9]{1,2}-[A-Za-z]{3}-([0-9]{2})(?![0-9])")


def _two_digit_year(yy: int, this_year: int) -> int:
    """RFC 9110 §5.6.7: the year ending in `yy` unless it appears to be more than 50 years in
    the future, then the one a century before (email.utils pivots at 1969 instead)."""
    year = this_year - this_year % 100 + yy
    if year > this_year + 50:
        return year - 100
    if year <= this_year - 50:
        return year + 100
    return year
