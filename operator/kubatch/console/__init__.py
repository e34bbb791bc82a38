"""The web console (``kubatch console``): queues, jobs, why, timeline and logs at a glance.

- :mod:`~kubatch.console.index`: the in-memory index fed by list-then-watch (pure);
- :mod:`~kubatch.console.pages`: the pages as escaped HTML (pure);
- :mod:`~kubatch.console.identity`: the viewer's identity and what it may read;
- :mod:`~kubatch.console.server`: the aiohttp shell, server-sent events, ``main``.

The answers (why, timeline, logs) come from :mod:`kubatch.insight`, shared with the kubectl
plugin. See docs/console.md.
"""
