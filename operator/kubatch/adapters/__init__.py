"""Adapters to the outside world the operator and the tools share.

- :mod:`~kubatch.adapters.kube`: the one Kubernetes client (login like kubectl, raw JSON over
  one aiohttp pool, impersonation and callers' tokens, every write counted);
- :mod:`~kubatch.adapters.watch`: the one list-then-watch (resume, bookmarks, 410 relist,
  backoff, never dies silently).
"""
