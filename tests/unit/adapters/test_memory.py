"""Free heap handed back after bursts: when, and that it is possible here."""

from __future__ import annotations

import platform

from kubatch.adapters import memory


def test_release_is_due_once_per_burst() -> None:
    r = memory.Release(every=3)
    r.count()
    r.count()
    assert not r.due()
    r.count()
    assert r.due()
    assert not r.due()  # counted afresh
    r.count(10)
    assert r.due()
    assert not r.due()


def test_release_hands_back_where_glibc_allows() -> None:
    assert memory.release() is (platform.libc_ver()[0] == "glibc")
