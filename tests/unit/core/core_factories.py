"""Test factories for the scheduling core: ``make_job``, ``make_queue``, ``make_ce`` and a
driver that runs cycles the way the operator does (snapshot -> schedule -> assume)."""

from __future__ import annotations

from kubatch.core.cache import Cache, CacheConfig
from kubatch.core.decisions import Admit, Decision
from kubatch.core.model import (
    ComputeEnvironment,
    Dependency,
    FairSharePolicy,
    JobQueue,
    JobSpec,
    StateTimeLimit,
)
from kubatch.core.resources import Resources
from kubatch.core.retry import RetryStrategy
from kubatch.core.scheduler import schedule
from kubatch.core.selector import LabelSelector

GI = 2**30


def make_ce(name: str = "ce", vcpus: int = 4, **kw: object) -> ComputeEnvironment:
    return ComputeEnvironment(name, max_vcpus=vcpus, **kw)  # type: ignore[arg-type]


def make_queue(
    name: str = "q",
    ces: tuple[str, ...] = ("ce",),
    priority: int = 0,
    *,
    enabled: bool = True,
    strict_fifo: bool = False,
    fair_share: FairSharePolicy | None = None,
    limits: tuple[StateTimeLimit, ...] = (),
    selector: LabelSelector | None = None,
) -> JobQueue:
    return JobQueue(
        name,
        priority=priority,
        enabled=enabled,
        compute_environments=ces,
        strict_fifo=strict_fifo,
        fair_share=fair_share,
        state_time_limits=limits,
        namespace_selector=selector or LabelSelector(),
    )


_seq = [0]


def make_job(
    name: str,
    queue: str = "q",
    vcpus: float = 1,
    mem_gi: int = 1,
    *,
    gpu: int = 0,
    ns: str = "ns",
    created_at: float | None = None,
    deps: tuple[Dependency, ...] = (),
    array: int | None = None,
    parallelism: int | None = None,
    max_failed: int | None = None,
    attempts: int = 1,
    retry: RetryStrategy | None = None,
    share: str | None = None,
    priority: int = 0,
    timeout: int | None = None,
    interruption_budget: int = 3,
    terminate: str | None = None,
) -> JobSpec:
    _seq[0] += 1
    return JobSpec(
        namespace=ns,
        name=name,
        queue=queue,
        size=Resources(int(vcpus * 1000), mem_gi * GI, gpu),
        created_at=float(_seq[0]) if created_at is None else created_at,
        token="uid",
        depends_on=deps,
        array_size=array,
        parallelism=parallelism,
        max_failed_children=max_failed,
        retry=retry or RetryStrategy(attempts),
        timeout_seconds=timeout,
        share_identifier=share,
        scheduling_priority=priority,
        interruption_budget=interruption_budget,
        terminate_reason=terminate,
    )


def make_cache(
    ces: tuple[ComputeEnvironment, ...] = (),
    queues: tuple[JobQueue, ...] = (),
    config: CacheConfig | None = None,
) -> Cache:
    c = Cache(config)
    for ce in ces:
        c.upsert_compute_environment(ce)
    for q in queues:
        c.upsert_queue(q, 0.0)
    return c


def cycle(cache: Cache, now: float = 0.0) -> list[Decision]:
    """One operator cycle: snapshot, schedule, assume every decision."""
    decisions = schedule(cache.snapshot(now), now)
    cache.assume_all(decisions, now)
    return decisions


def admitted(decisions: list[Decision]) -> list[str]:
    return [
        d.job_key if d.index is None else f"{d.job_key}:{d.index}"
        for d in decisions
        if isinstance(d, Admit)
    ]


def of_type(decisions: list[Decision], kind: type) -> list[Decision]:
    return [d for d in decisions if isinstance(d, kind)]
