"""kubatch's benchmarks, outside the operator's package: ``kubatch bench core|sim|e2e``.

Each of ``core``, ``sim`` and ``e2e`` has ``main(argv) -> int``, writes JSON (``--json``) and
prints a summary; ``common`` holds what they share. See docs/benchmarks.md.
"""
