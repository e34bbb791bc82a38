"""RFC 3339 parsing and formatting: the one module every reader and writer of timestamps uses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubatch.timefmt import parse_time, rfc3339, rfc3339_micro

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1970-01-01T00:01:00Z", 60.0),
        ("2023-11-14T22:13:20Z", T0),
        ("2023-11-14T22:13:20.5Z", T0 + 0.5),
        ("2023-11-14T22:13:20.123456Z", T0 + 0.123456),
        ("2023-11-14T22:13:20.123456789Z", T0 + 0.123456),
        ("2023-11-15T00:13:20+02:00", T0),
        ("2023-11-14t22:13:20z", T0),
        ("2023-11-14T22:13:20", T0),
        (" 2023-11-14T22:13:20Z ", T0),
    ],
    ids=["epoch", "seconds", "fraction", "micro", "nano", "offset", "lower", "naive-utc", "spaces"],
)
def test_parse_time(text: str, expected: float) -> None:
    assert parse_time(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "value", [None, "", "yesterday", "2023-11-14", "2023-13-01T00:00:00Z", 12.5, b"x"], ids=repr
)
def test_parse_time_unreadable_is_none(value: object) -> None:
    assert parse_time(value) is None


def test_formats_are_the_kubernetes_ones() -> None:
    assert rfc3339(T0) == "2023-11-14T22:13:20Z"
    assert rfc3339(T0 + 0.999) == "2023-11-14T22:13:20Z"  # metav1.Time drops the fraction
    assert rfc3339_micro(T0 + 0.25) == "2023-11-14T22:13:20.250000Z"
    assert rfc3339(-0.5) == "1969-12-31T23:59:59Z"  # the fraction is dropped downwards


def test_equal_seconds_share_one_string() -> None:
    """Jobs keep many timestamps; those of one second are one string."""
    assert rfc3339(T0 + 0.2) is rfc3339(T0 + 0.7)
    assert rfc3339(T0 + 1.2) != rfc3339(T0 + 0.7)


@given(st.integers(min_value=0, max_value=4_000_000_000))
def test_round_trip_whole_seconds(epoch: int) -> None:
    assert parse_time(rfc3339(epoch)) == epoch


@given(st.integers(min_value=0, max_value=4_000_000_000), st.integers(0, 999_999))
def test_round_trip_micro(epoch: int, micros: int) -> None:
    value = epoch + micros / 1e6
    assert parse_time(rfc3339_micro(value)) == pytest.approx(value, abs=1e-6)
