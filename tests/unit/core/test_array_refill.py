"""Regression: an array limited by ``parallelism`` admits its next children as soon as running
children finish (found end to end: the array stalled after its first wave)."""

from __future__ import annotations

import pytest

from kubatch.core.cache import Cache
from kubatch.core.decisions import Admit, Succeed
from kubatch.core.model import ComputeEnvironment, JobQueue, JobSpec
from kubatch.core.resources import Resources
from kubatch.core.scheduler import schedule


@pytest.mark.parametrize("strict_fifo", [False, True], ids=["fifo", "strict-fifo"])
def test_array_refills_parallelism_slots(strict_fifo: bool) -> None:
    cache = Cache()
    cache.upsert_compute_environment(ComputeEnvironment("ce", 64))
    cache.upsert_queue(JobQueue("q", 1, compute_environments=("ce",), strict_fifo=strict_fifo), 0)
    size = Resources(1000, 2**30, 0)
    cache.upsert_job(
        JobSpec("ns", "a", "q", size, created_at=1, token="t", array_size=12, parallelism=5), 1
    )
    now, waves, done = 2.0, [], False
    for _ in range(6):
        decisions = schedule(cache.snapshot(now), now)
        cache.assume_all(decisions, now)
        admits = [d for d in decisions if isinstance(d, Admit)]
        done = done or any(isinstance(d, Succeed) for d in decisions)
        waves.append(len(admits))
        assert len(admits) <= 5
        now += 1
        for d in admits:
            cache.attempt_started(d.job_key, d.index, d.attempt, now)
            cache.attempt_finished(d.job_key, d.index, d.attempt, now + 0.5, exit_code=0)
        now += 1
    assert waves[:3] == [5, 5, 2]
    assert done
