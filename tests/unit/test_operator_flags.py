"""The operator's command line becomes its Settings (one object, passed down)."""

from __future__ import annotations

from kubatch.controller.main import build_parser, settings_from


def test_defaults_hold_starting_five_seconds_and_keep_attempts_two_hours() -> None:
    s = settings_from(build_parser().parse_args([]))
    assert s.timings.starting_hold == 5.0
    assert s.timings.pull_timeout == 600.0
    assert s.job_retention == 7200.0


def test_flags_set_the_timings() -> None:
    args = build_parser().parse_args(
        ["--starting-hold", "0", "--pull-timeout", "30", "--job-retention", "0", "-n", "a"]
    )
    s = settings_from(args)
    assert (s.timings.starting_hold, s.timings.pull_timeout, s.job_retention) == (0.0, 30.0, 0.0)
    assert s.namespaces == ("a",)
