"""``kubatch demo``: the whole of kubatch on this machine, in about a minute.

:mod:`kubatch.demo.report` holds the pure half (what each example intends, views of
BatchJobs, the progress table, the summary); :mod:`kubatch.demo.runner` the effectful one
(plane, stack, examples, live progress, clean-up by PID). ``kubatch demo`` calls :func:`main`.
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str]) -> int:
    """Run the demo (see ``kubatch demo --help``); returns the exit code."""
    from kubatch.demo.runner import main as run

    return run(argv)
