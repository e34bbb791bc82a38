"""Insight: the answers kubatch gives about jobs, queues and compute environments, built once.

Pure modules (no I/O, no clock: ``now`` is passed in) over the raw objects the API server
returns:

- :mod:`~kubatch.insight.why`: where a job stands and, per compute environment of its queue,
  whether it could ever run there and whether it has room now;
- :mod:`~kubatch.insight.timeline`: when each job (and array child) waited, started, ran, on
  which compute environment and capacity type, with interruptions and retries marked;
  :mod:`~kubatch.insight.draw` renders it as terminal text, SVG or HTML;
- :mod:`~kubatch.insight.logs`: which pod holds the log of an attempt or an array child;
- :mod:`~kubatch.insight.plan`: a dry run — per compute environment, can the job ever fit,
  where would it land, what would it cost, and when would it start;
- :mod:`~kubatch.insight.rates`: a queue's recent admission rate and the start estimates
  built on it;
- :mod:`~kubatch.insight.top`: queues and compute environments now.

:mod:`~kubatch.insight.sources` is the one effectful module: it gathers those objects through
kubatch's one Kubernetes client (``kubatch.adapters.kube``). The kubectl plugin and the web
console both use this package; it never imports the controller.
"""
