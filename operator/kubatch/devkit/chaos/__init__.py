"""The chaos tier (``make chaos``, ``kubatch bench chaos``, ``tests/chaos``): a plane of its
own, the simulator and two operators, a mixed workload, seven fault scenarios, and the
invariants checked from the cluster (docs/reliability.md, "Faults").

- :mod:`.workload`: the waves of BatchJobs and the outcome each one's spec implies (pure);
- :mod:`.invariants`: the checks over the cluster's objects (pure);
- :mod:`.cluster`: the processes (plane, simulator, proxies, operators) and their metrics;
- :mod:`.scenarios`: the faults;
- :mod:`.run`: one run, its report.
"""
