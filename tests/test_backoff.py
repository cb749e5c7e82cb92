"""The one backoff and the one Retry-After parser (queue/backoff.py), as properties.

A delay stays within [ceiling/2, ceiling] of its capped exponential ceiling, never below the
Retry-After the other side gave, and grows with the attempts up to the cap. The parser reads
any delta-seconds as itself, any date in the past as 0, junk as None, and never raises.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookyard.queue.backoff import MAX_RETRY_AFTER_SECONDS, Backoff, retry_after_seconds

NOW = datetime(2025, 11, 21, 12, 0, 0, tzinfo=UTC)

backoffs = st.builds(
    Backoff,
    max_attempts=st.integers(1, 100),
    base_seconds=st.floats(0.001, 1000.0),
    max_seconds=st.floats(0.001, 100_000.0),
)
attempts = st.integers(0, 10_000)
rands = st.floats(0.0, 1.0)


def ceiling(backoff: Backoff, attempt: int) -> float:
    exponent = max(0, attempt - 1)
    if exponent > 64:
        return backoff.max_seconds
    return min(backoff.max_seconds, backoff.base_seconds * 2.0**exponent)


@given(backoffs, attempts, rands)
def test_a_delay_is_within_half_and_all_of_its_capped_ceiling(
    backoff: Backoff, attempt: int, rand: float
) -> None:
    delay = backoff.delay(attempt, rand=lambda: rand)
    top = ceiling(backoff, attempt)
    assert top / 2 <= delay <= top <= backoff.max_seconds


@given(backoffs, attempts, rands, st.floats(0.0, MAX_RETRY_AFTER_SECONDS))
def test_a_delay_is_never_shorter_than_retry_after(
    backoff: Backoff, attempt: int, rand: float, retry_after: float
) -> None:
    delay = backoff.delay(attempt, retry_after, rand=lambda: rand)
    assert delay >= retry_after
    # Only Retry-After may take it past the cap, and then it is exactly Retry-After.
    assert delay <= max(ceiling(backoff, attempt), retry_after)


@given(backoffs, attempts, rands)
def test_delays_grow_with_the_attempts_up_to_the_cap(
    backoff: Backoff, attempt: int, rand: float
) -> None:
    earlier = backoff.delay(attempt, rand=lambda: rand)
    later = backoff.delay(attempt + 1, rand=lambda: rand)
    assert earlier <= later <= backoff.max_seconds
    assert backoff.delay(attempt + 10_000, rand=lambda: rand) == pytest.approx(
        backoff.max_seconds / 2 + rand * backoff.max_seconds / 2
    )


@given(backoffs, attempts)
def test_the_next_attempt_is_none_once_the_attempts_are_used(
    backoff: Backoff, attempt: int
) -> None:
    at = backoff.next_attempt(attempt, NOW, MAX_RETRY_AFTER_SECONDS)
    if attempt >= backoff.max_attempts:
        assert at is None
    else:
        assert at is not None and at >= NOW + timedelta(seconds=MAX_RETRY_AFTER_SECONDS)


# --- Retry-After ----------------------------------------------------------------------------


@given(st.integers(0, 2**31), st.sampled_from(["", " ", "\t", "  "]))
def test_delta_seconds_read_as_themselves(seconds: int, space: str) -> None:
    assert retry_after_seconds(f"{space}{seconds}{space}") == float(seconds)


@given(st.from_regex(r"\A[0-9]{1,40}\Z"))
def test_any_digits_read_as_their_number_at_most_the_cap(digits: str) -> None:
    assert retry_after_seconds(digits) == min(float(int(digits)), MAX_RETRY_AFTER_SECONDS)


def _formats(when: datetime) -> list[str]:
    """The three HTTP-date formats a recipient must accept (RFC 9110 §5.6.7)."""
    return [
        format_datetime(when, usegmt=True),  # IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
        when.strftime("%a %b ") + f"{when.day:2d}" + when.strftime(" %H:%M:%S %Y"),  # asctime
        when.strftime("%A, %d-%b-%y %H:%M:%S GMT"),  # obsolete RFC 850: a two-digit year
    ]


dates = st.datetimes(datetime(1000, 1, 1), datetime(9999, 12, 31), timezones=st.just(UTC))


@given(dates.filter(lambda when: when < NOW))
def test_a_date_in_the_past_is_now(when: datetime) -> None:
    when = when.replace(microsecond=0)
    # RFC 850's two-digit year reaches back 50 years; before that it names a later century.
    recent = when.year > NOW.year - 50
    for text in _formats(when)[: 3 if recent else 2]:
        assert retry_after_seconds(text, NOW) == 0.0, text


@given(st.integers(0, 2**31))
def test_a_date_in_the_future_is_the_seconds_until_it(seconds: int) -> None:
    when = NOW + timedelta(seconds=seconds)
    # RFC 850's two-digit year reaches 50 years ahead, not further.
    soon = when.year <= NOW.year + 50
    for text in _formats(when)[: 3 if soon else 2]:
        assert retry_after_seconds(text, NOW) == float(seconds), text


@pytest.mark.parametrize(
    ("two_digits", "year"),
    [("25", 2025), ("75", 2075), ("76", 1976), ("94", 1994), ("00", 2000), ("69", 2069)],
)
def test_an_rfc850_year_is_the_one_within_50_years_ahead(two_digits: str, year: int) -> None:
    expected = (datetime(year, 11, 21, 12, 0, 0, tzinfo=UTC) - NOW).total_seconds()
    text = f"Friday, 21-Nov-{two_digits} 12:00:00 GMT"
    assert retry_after_seconds(text, NOW) == max(0.0, expected)


@given(st.text(st.characters(blacklist_categories=["Nd"])))
def test_text_without_digits_is_none(junk: str) -> None:
    assert retry_after_seconds(junk) is None


@given(st.text())
def test_any_text_gives_none_or_a_bounded_wait_and_never_raises(text: str) -> None:
    seconds = retry_after_seconds(text, NOW)
    assert seconds is None or 0.0 <= seconds <= MAX_RETRY_AFTER_SECONDS


@pytest.mark.parametrize(
    "value",
    [None, "", " ", "-1", "-0", "+5", "1.5", "0.0", "1e3", "inf", "NaN", "5s", "0x10", "١٢",
     "1,5", "12 34", "soon", "Fri, 32 Nov 2025 12:00:00 GMT", "Fri, 21 Nov 2025 25:00:00 GMT"],
)  # fmt: skip
def test_negative_fractional_non_finite_and_malformed_values_are_none(value: str | None) -> None:
    assert retry_after_seconds(value, NOW) is None


def test_a_date_is_read_in_its_own_zone_and_capped() -> None:
    assert retry_after_seconds("Fri, 21 Nov 2025 12:00:30 GMT", NOW) == 30.0
    assert retry_after_seconds("Fri, 21 Nov 2025 13:00:30 +0100", NOW) == 30.0
    assert retry_after_seconds("Fri, 31 Dec 9999 23:59:59 GMT", NOW) == MAX_RETRY_AFTER_SECONDS
    assert retry_after_seconds("9" * 400) == MAX_RETRY_AFTER_SECONDS
