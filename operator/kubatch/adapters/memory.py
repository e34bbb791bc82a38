"""Handing the heap that bursts leave free back to the system.

A burst of short-lived objects — a list of 10,000 objects decoded at a takeover, kopf's
replay of them, thousands of status answers — grows the C heap, and glibc keeps what is
freed afterwards for later use (only the heap's top is given back by itself). The resident
size then shows the largest burst ever rather than what the operator holds. ``malloc_trim``
hands free pages anywhere in the heap back; it takes milliseconds, so it runs after a burst
(:class:`Release`), never per object. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("kubatch.memory")

_trim: Callable[[int], Any] | None = None
_looked = False


def _trim_function() -> Callable[[int], Any] | None:
    global _trim, _looked
    if not _looked:
        _looked = True
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name) if name else None
        except OSError:
            libc = None
        _trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    return _trim


def release() -> bool:
    """Hand free heap pages back to the system; False where that is not possible."""
    trim = _trim_function()
    if trim is None:
        return False
    try:
        trim(0)
    except OSError as exc:  # pragma: no cover - a libc that refuses
        log.debug("malloc_trim failed: %s", exc)
        return False
    return True


class Release:
    """Release after a burst: :meth:`count` what was handled (watch events, answers); once
    ``every`` have been counted, the next :meth:`due` says so (at most once per ``every``).
    The caller releases (:func:`release`) where a few milliseconds do not matter."""

    __slots__ = ("every", "seen")

    def __init__(self, every: int = 5000) -> None:
        self.every = every
        self.seen = 0

    def count(self, n: int = 1) -> None:
        self.seen += n

    def due(self) -> bool:
        if self.seen < self.every:
            return False
        self.seen = 0
        return True
