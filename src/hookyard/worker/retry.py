"""Retry policy: exponential backoff with jitter, bounded attempts."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    base_seconds: float = 2.0
    max_seconds: float = 3600.0

    def delay(self, attempts: int) -> float:
        """Seconds before the next try after `attempts` failed ones ("equal jitter")."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempts - 1))
        return float(ceiling / 2 + random.uniform(0, ceiling / 2))

    def next_attempt(self, attempts: int, now: datetime) -> datetime | None:
        """When to try again, or None: the event is dead."""
        if attempts >= self.max_attempts:
            return None
        return now + timedelta(seconds=self.delay(attempts))
