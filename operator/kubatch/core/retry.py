"""Retry strategy and AWS ``evaluateOnExit`` semantics.

Pure. Rules (at most 5) are tried in order; the first rule all of whose *given* fields match
decides (``Retry`` or ``Exit``, case-insensitive). No rule matches -> retry while attempts
remain. Patterns are globs where ``*`` may only appear at the end for ``onExitCode``
(``onReason``/``onStatusReason`` accept letters, digits, ``.:`` and whitespace, ``*`` at the end
too, as AWS documents). Matching is exact/prefix; case-sensitive like AWS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

MAX_RULES = 5
MIN_ATTEMPTS, MAX_ATTEMPTS = 1, 10


class RetryAction(StrEnum):
    RETRY = "Retry"
    EXIT = "Exit"


class RetrySpecError(ValueError):
    """An invalid retry strategy (too many rules, bad pattern, bad action, attempts range)."""


def _check_pattern(pattern: str, field_name: str, digits_only: bool) -> None:
    if len(pattern) > 512:
        raise RetrySpecError(f"{field_name}: pattern longer than 512 characters")
    star = pattern.find("*")
    if star != -1 and star != len(pattern) - 1:
        raise RetrySpecError(f"{field_name}: '*' is only allowed at the end: {pattern!r}")
    body = pattern.rstrip("*") if star != -1 else pattern
    if digits_only and not body.isdigit() and body != "":
        raise RetrySpecError(f"{field_name}: must be digits with an optional trailing '*'")


def glob_match(pattern: str, value: str) -> bool:
    """Pure: AWS glob: exact match, or prefix match when the pattern ends with ``*``."""
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


@dataclass(frozen=True, slots=True)
class ExitRule:
    """One ``evaluateOnExit`` entry. ``None`` fields are not given (they match anything)."""

    action: RetryAction
    on_exit_code: str | None = None
    on_reason: str | None = None
    on_status_reason: str | None = None

    @staticmethod
    def parse(
        action: str,
        on_exit_code: str | None = None,
        on_reason: str | None = None,
        on_status_reason: str | None = None,
    ) -> ExitRule:
        """Pure: validate and build a rule; ``action`` is case-insensitive."""
        low = action.strip().lower()
        if low not in ("retry", "exit"):
            raise RetrySpecError(f"action must be Retry or Exit, not {action!r}")
        if on_exit_code is not None:
            _check_pattern(on_exit_code, "onExitCode", digits_only=True)
        if on_reason is not None:
            _check_pattern(on_reason, "onReason", digits_only=False)
        if on_status_reason is not None:
            _check_pattern(on_status_reason, "onStatusReason", digits_only=False)
        if on_exit_code is None and on_reason is None and on_status_reason is None:
            raise RetrySpecError("a rule needs onExitCode, onReason or onStatusReason")
        return ExitRule(
            RetryAction.RETRY if low == "retry" else RetryAction.EXIT,
            on_exit_code,
            on_reason,
            on_status_reason,
        )

    def matches(self, exit_code: int | None, reason: str | None, status_reason: str | None) -> bool:
        """Pure: every given field matches the attempt's result (a missing value is "")."""
        code = "" if exit_code is None else str(exit_code)
        return (
            (self.on_exit_code is None or glob_match(self.on_exit_code, code))
            and (self.on_reason is None or glob_match(self.on_reason, reason or ""))
            and (
                self.on_status_reason is None
                or glob_match(self.on_status_reason, status_reason or "")
            )
        )


@dataclass(frozen=True, slots=True)
class RetryStrategy:
    """``retryStrategy``: total attempts (1-10) and up to 5 ``evaluateOnExit`` rules."""

    attempts: int = 1
    evaluate_on_exit: tuple[ExitRule, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not MIN_ATTEMPTS <= self.attempts <= MAX_ATTEMPTS:
            raise RetrySpecError(f"attempts must be {MIN_ATTEMPTS}-{MAX_ATTEMPTS}")
        if len(self.evaluate_on_exit) > MAX_RULES:
            raise RetrySpecError(f"at most {MAX_RULES} evaluateOnExit rules")


def evaluate_exit(
    strategy: RetryStrategy,
    attempts_made: int,
    exit_code: int | None,
    reason: str | None = None,
    status_reason: str | None = None,
) -> RetryAction:
    """Pure: ``Retry`` or ``Exit`` after a failed attempt (``attempts_made`` counts it).

    The first rule whose given fields all match decides; a ``Retry`` decision still needs an
    attempt left. Without a matching rule the job retries while attempts remain.
    """
    left = attempts_made < strategy.attempts
    for rule in strategy.evaluate_on_exit:
        if rule.matches(exit_code, reason, status_reason):
            return (
                RetryAction.RETRY
                if rule.action is RetryAction.RETRY and left
                else (RetryAction.EXIT)
            )
    return RetryAction.RETRY if left else RetryAction.EXIT
