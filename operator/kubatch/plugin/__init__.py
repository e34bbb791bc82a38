"""``kubectl batch``: the kubectl plugin of kubatch (the ``kubectl-batch`` executable).

:mod:`kubatch.plugin.views` (arguments, manifests, tables) is pure, and the answers (``why``,
``plan``, ``timeline``, ``top``, which pod holds a log) are :mod:`kubatch.insight`'s;
:mod:`kubatch.plugin.cli` and :mod:`kubatch.plugin.verbs` are the commands around them,
talking to the cluster through kubatch's one client.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

__all__ = ["main"]


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run ``kubectl batch``; returns the exit code (0 ok, 1 error, 2 usage)."""
    from kubatch.plugin.cli import main as run

    return run(argv, out)
