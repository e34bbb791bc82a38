"""Development helpers shared by the demo, the benchmarks and the tests — never by the operator.

- :mod:`~kubatch.devkit.process`: child processes with a log file, in their own session,
  stopped by PID (SIGTERM, then SIGKILL); ``free_port``; ``pid_alive``.
- :mod:`~kubatch.devkit.polling`: ``eventually()`` (and its async twin), the one poll loop.
- :mod:`~kubatch.devkit.stats`: ``percentile()``, the one percentile definition (nearest rank).
- :mod:`~kubatch.devkit.promtext`: Prometheus text exposition -> samples.
- :mod:`~kubatch.devkit.stack`: the whole stack on a control plane — kubatch's CRDs, ``kubatch
  sim run`` and ``kubatch operator`` as child processes.

import-linter keeps this package out of the operator's layers (controller, core, render, api,
adapters, sim, metrics, local never import it). Submodules are imported one by one: importing
the package itself costs nothing.
"""
