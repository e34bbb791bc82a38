"""evaluateOnExit, exactly as AWS documents it."""

from __future__ import annotations

import pytest

from kubatch.core.retry import (
    ExitRule,
    RetryAction,
    RetrySpecError,
    RetryStrategy,
    evaluate_exit,
)

R, E = RetryAction.RETRY, RetryAction.EXIT

# AWS docs ("Automated job retries"): retry only for EC2 host failures, exit otherwise.
AWS_HOST = RetryStrategy(
    5,
    (ExitRule.parse("RETRY", on_status_reason="Host EC2*"), ExitRule.parse("EXIT", on_reason="*")),
)
CODES = RetryStrategy(
    3, (ExitRule.parse("Exit", on_exit_code="0"), ExitRule.parse("retry", on_exit_code="65*"))
)

CASES = [
    (
        "aws-host-ec2-terminated-retries",
        AWS_HOST,
        1,
        137,
        "",
        "Host EC2 (instance i-1) terminated.",
        R,
    ),
    ("aws-other-failure-exits", AWS_HOST, 1, 1, "Essential container exited", "", E),
    ("aws-host-but-no-attempts-left", AWS_HOST, 5, 137, "", "Host EC2 (instance) terminated.", E),
    ("exit-code-prefix-65", CODES, 1, 650, None, None, R),
    ("exit-code-prefix-65-exact", CODES, 1, 65, None, None, R),
    ("exit-code-6-not-prefix", CODES, 1, 6, None, None, R),  # no match -> retry (attempts left)
    ("no-match-and-exhausted-exits", CODES, 3, 6, None, None, E),
    ("no-rules-retries-while-left", RetryStrategy(2), 1, 1, None, None, R),
    ("no-rules-exhausted", RetryStrategy(2), 2, 1, None, None, E),
    ("single-attempt-never-retries", RetryStrategy(1), 1, 1, None, None, E),
]


@pytest.mark.parametrize(
    ("strategy", "made", "code", "reason", "status_reason", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_evaluate_exit(
    strategy: RetryStrategy,
    made: int,
    code: int,
    reason: str | None,
    status_reason: str | None,
    expected: RetryAction,
) -> None:
    assert evaluate_exit(strategy, made, code, reason, status_reason) is expected


def test_first_matching_rule_decides() -> None:
    s = RetryStrategy(
        3, (ExitRule.parse("EXIT", on_exit_code="1*"), ExitRule.parse("RETRY", on_exit_code="12"))
    )
    assert evaluate_exit(s, 1, 12) is E


def test_all_given_fields_must_match() -> None:
    rule = ExitRule.parse("EXIT", on_exit_code="1", on_reason="OutOfMemory*")
    assert rule.matches(1, "OutOfMemoryError", None)
    assert not rule.matches(1, "Other", None)
    assert not rule.matches(2, "OutOfMemoryError", None)


@pytest.mark.parametrize("action", ["retry", "RETRY", "Retry", "rEtRy"])
def test_action_is_case_insensitive(action: str) -> None:
    assert ExitRule.parse(action, on_exit_code="1").action is R


BAD = [
    ("star-in-middle-exit-code", {"action": "Exit", "on_exit_code": "1*2"}),
    ("letters-in-exit-code", {"action": "Exit", "on_exit_code": "abc"}),
    ("star-in-middle-reason", {"action": "Exit", "on_reason": "a*b"}),
    ("bad-action", {"action": "Maybe", "on_exit_code": "1"}),
    ("no-field", {"action": "Exit"}),
]


@pytest.mark.parametrize("kw", [c[1] for c in BAD], ids=[c[0] for c in BAD])
def test_invalid_rules_are_rejected(kw: dict[str, str]) -> None:
    with pytest.raises(RetrySpecError):
        ExitRule.parse(**kw)


def test_at_most_five_rules_and_attempts_1_to_10() -> None:
    rule = ExitRule.parse("Exit", on_exit_code="1")
    RetryStrategy(10, (rule,) * 5)
    with pytest.raises(RetrySpecError):
        RetryStrategy(1, (rule,) * 6)
    with pytest.raises(RetrySpecError):
        RetryStrategy(11)
    with pytest.raises(RetrySpecError):
        RetryStrategy(0)
