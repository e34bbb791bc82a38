"""Invariants over random queues, CEs, jobs and events (hypothesis)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubatch.core.cache import Cache
from kubatch.core.decisions import Admit, Decision, Fail, Preempt, Succeed, UpdateArraySummary
from kubatch.core.graph import satisfies as _satisfies
from kubatch.core.lifecycle import Phase, Reason
from kubatch.core.model import (
    ComputeEnvironment,
    Condition,
    ConsumableResource,
    Dependency,
    DependencyType,
    FairSharePolicy,
    Gang,
    JobQueue,
    JobSpec,
    NodeRange,
    PreemptionPolicy,
    ResourceType,
    Share,
)
from kubatch.core.resources import Resources
from kubatch.core.retry import RetryStrategy
from kubatch.core.scheduler import schedule

NAMES = [f"j{i}" for i in range(12)]
CONSUMABLES = (
    ConsumableResource("lic", 2, ResourceType.REPLENISHABLE),
    ConsumableResource("tok", 3, ResourceType.NON_REPLENISHABLE),
)
POLICIES = [None, PreemptionPolicy(lower_priority=True), PreemptionPolicy(fair_share=True),
            PreemptionPolicy(lower_priority=True, fair_share=True)]  # fmt: skip


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[ComputeEnvironment], list[JobQueue], list[JobSpec]]:
    n_ce = draw(st.integers(1, 3))
    ces = [
        ComputeEnvironment(
            f"ce{i}",
            max_vcpus=draw(st.integers(0, 8)),
            enabled=draw(st.booleans() | st.just(True)),
            node_capacity=draw(
                st.none()
                | st.builds(
                    Resources, st.integers(0, 8000), st.integers(0, 8 * 2**30), st.integers(0, 2)
                )
            ),
        )
        for i in range(n_ce)
    ]
    queues = []
    for i in range(draw(st.integers(1, 3))):
        order = tuple(draw(st.permutations([c.name for c in ces]))[: draw(st.integers(1, n_ce))])
        fair = draw(st.booleans())
        queues.append(
            JobQueue(
                f"q{i}",
                priority=draw(st.integers(0, 3)),
                enabled=draw(st.booleans() | st.just(True)),
                compute_environments=order,
                strict_fifo=draw(st.booleans()),
                fair_share=FairSharePolicy(
                    compute_reservation=draw(st.sampled_from([0, 50])),
                    shares=(Share("a", 0.5), Share("b", 2.0)),
                )
                if fair
                else None,
                preemption=draw(st.sampled_from(POLICIES)),
            )
        )
    jobs = []
    for i, name in enumerate(
        draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=10, unique=True))
    ):
        deps = tuple(
            Dependency(d, DependencyType.WHOLE, draw(st.sampled_from(list(Condition))))
            for d in draw(st.lists(st.sampled_from(NAMES), max_size=2, unique=True))
        )
        array = draw(st.none() | st.integers(2, 4))
        if array is not None and draw(st.booleans()):
            deps = (*deps, Dependency(None, DependencyType.SEQUENTIAL))
        size = Resources(
            draw(st.integers(1, 4)) * 1000, draw(st.integers(1, 4)) * 2**30, draw(st.integers(0, 1))
        )
        gang = None
        if array is None and draw(st.integers(0, 3)) == 0:  # a multi-node job
            n = draw(st.integers(2, 3))
            gang = Gang(n, draw(st.integers(0, n - 1)), (NodeRange(0, n - 1, size),),
                        start_timeout_seconds=draw(st.sampled_from([2, 5, 600])))  # fmt: skip
        needs = draw(st.lists(st.sampled_from([("lic", 1), ("lic", 2), ("tok", 1)]),
                              max_size=2, unique_by=lambda x: x[0]))  # fmt: skip
        jobs.append(
            JobSpec(
                "ns",
                name,
                f"q{draw(st.integers(0, len(queues) - 1))}",
                gang.total() if gang is not None else size,
                created_at=float(i),
                token="t",
                depends_on=deps,
                array_size=array,
                parallelism=draw(st.none() | st.integers(1, 3)),
                retry=RetryStrategy(draw(st.integers(1, 3))),
                share_identifier=draw(st.sampled_from(["a", "b"])),
                interruption_budget=draw(st.integers(0, 2)),
                gang=gang,
                consumables=tuple(needs),
            )
        )
    return ces, queues, jobs


@dataclass
class Model:
    running: dict[tuple[str, int | None], tuple[str, Resources]] = field(default_factory=dict)
    terminal: dict[str, Phase] = field(default_factory=dict)
    admitted_keys: set[str] = field(default_factory=set)
    used_up: dict[str, int] = field(default_factory=dict)  # NON_REPLENISHABLE units consumed


def static_cycles(jobs: list[JobSpec]) -> set[str]:
    graph = {j.name: [d.job_name for d in j.depends_on if d.job_name] for j in jobs}
    in_cycle: set[str] = set()
    for start, targets in graph.items():
        stack, seen = list(targets), set()
        while stack:
            n = stack.pop()
            if n == start:
                in_cycle.add(start)
                break
            if n in seen or n not in graph:
                continue
            seen.add(n)
            stack.extend(graph[n])
    return {f"ns/{n}" for n in in_cycle}


def check_cycle(
    cache: Cache,
    decisions: list[Decision],
    model: Model,
    queues: dict[str, JobQueue],
    cycles: set[str],
) -> None:
    lower_on: dict[str, dict[int, int]] = {}
    for d in decisions:
        key = d.job_key
        if key in model.terminal:  # terminal phases are final
            assert isinstance(d, UpdateArraySummary), d
            assert d.phase is model.terminal[key], d
        if isinstance(d, Admit):
            job = cache.jobs[key]
            assert key not in cycles, "a job in a dependency cycle was admitted"
            for dep in job.spec.depends_on:  # dependents never start early
                if dep.type is DependencyType.WHOLE:
                    parent = cache.jobs[f"ns/{dep.job_name}"]
                    assert parent.phase.terminal
                    assert _satisfies(dep.condition, parent.phase)
                elif dep.type is DependencyType.SEQUENTIAL and d.index:
                    assert job.array is not None
                    assert job.array.child_phase[d.index - 1] == list(Phase).index(Phase.SUCCEEDED)
            model.running[(key, d.index)] = (d.compute_environment, d.resources)
            gang = job.spec.gang
            if gang is not None:  # a gang is never partially admitted: one Admit, every node
                assert d.index is None
                assert d.resources == gang.total() == job.spec.size
            for name, qty in job.spec.consumables:
                if name == "tok":
                    model.used_up[name] = model.used_up.get(name, 0) + qty
            prio = queues[d.queue].priority
            lower_on.setdefault(d.compute_environment, {}).setdefault(prio, 0)
            lower_on[d.compute_environment][prio] += d.resources.mcpu
        elif isinstance(d, Preempt):
            check_preempt(cache, d, model, queues)
        elif isinstance(d, Succeed | Fail):
            model.terminal.setdefault(
                key, Phase.SUCCEEDED if isinstance(d, Succeed) else Phase.FAILED
            )
    # capacity never exceeded (independent count from the decisions)
    for name, led in cache.ledgers.items():
        used = [0, 0, 0]
        for ce, r in model.running.values():
            if ce == name:
                used[0] += r.mcpu
                used[1] += r.memory
                used[2] += r.gpu
        lim = led.limit
        assert used[0] <= lim.mcpu
        assert used[1] <= lim.memory
        assert used[2] <= lim.gpu
        assert used == [led.mcpu, led.memory, led.gpu]
    # consumables never over-allocated (independent count; totals do not change here)
    held = {"lic": 0}
    for (key, _index), _ in model.running.items():
        for name, qty in cache.jobs[key].spec.consumables:
            if name == "lic":
                held[name] += qty
    assert held["lic"] <= CONSUMABLES[0].total
    assert model.used_up.get("tok", 0) <= CONSUMABLES[1].total
    assert cache.consumables.usage("lic") == (held["lic"], CONSUMABLES[0].total - held["lic"])
    assert cache.consumables.pools["tok"].consumed == model.used_up.get("tok", 0)
    # no priority inversion: a waiting job of a higher-priority FIFO queue would not have fit
    # even in the room that lower-priority admissions took on that CE
    for job in cache.jobs.values():
        if job.phase is not Phase.RUNNABLE or not job.queued:
            continue
        q = queues[job.spec.queue]
        if not q.enabled or q.fair_share is not None or q.strict_fifo:
            continue
        if job.last_status and job.last_status[1] is Reason.CONSUMABLE_UNAVAILABLE:
            continue  # it waits for a consumable resource, not for capacity
        if job.array is not None and len(job.array.active) >= (job.spec.parallelism or 99):
            continue
        for name in q.compute_environments[job.ce_floor :]:
            led = cache.ledgers[name]
            if not led.ce.enabled:
                continue
            took = sum(v for p, v in lower_on.get(name, {}).items() if p < q.priority)
            if took == 0:
                continue
            free = led.limit.mcpu - led.mcpu + took
            size = job.spec.size
            assert not (
                size.mcpu <= free
                and size.memory <= led.limit.memory - led.memory
                and size.gpu <= led.limit.gpu - led.gpu
            ), f"inversion: {job.key} (prio {q.priority}) waits for {name}"
    # every waiting job has a reason
    for job in cache.jobs.values():
        if job.phase in (Phase.PENDING, Phase.RUNNABLE) and not (
            job.array is not None and job.array.active
        ):
            assert job.last_status is not None, job.key
            assert job.last_status[0] is job.phase
            assert isinstance(job.last_status[1], Reason)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    worlds(),
    st.lists(st.tuples(st.integers(0, 30), st.integers(0, 6)), max_size=30),
    st.integers(0, 6),
)
def test_invariants_hold_over_random_runs(
    world: tuple[list[ComputeEnvironment], list[JobQueue], list[JobSpec]],
    events: list[tuple[int, int]],
    late: int,
) -> None:
    run(world, events, late)


@st.composite
def depth_worlds(
    draw: st.DrawFn,
) -> tuple[list[ComputeEnvironment], list[JobQueue], list[JobSpec]]:
    """Busy worlds for #17: queues of distinct priorities sharing CEs, most of them
    preempting; gangs and consumable resources; no dependencies."""
    ces = [ComputeEnvironment(f"ce{i}", max_vcpus=draw(st.integers(2, 8)))
           for i in range(draw(st.integers(1, 2)))]  # fmt: skip
    queues = []
    for i, prio in enumerate(draw(st.lists(st.integers(0, 5), min_size=2, max_size=3))):
        fair = draw(st.booleans())
        queues.append(JobQueue(
            f"q{i}", priority=prio, compute_environments=tuple(c.name for c in ces),
            fair_share=FairSharePolicy(shares=(Share("a", 1.0), Share("b", 0.5))) if fair else None,
            preemption=draw(st.sampled_from([*POLICIES[1:], None])),
        ))  # fmt: skip
    jobs = []
    for i in range(draw(st.integers(3, 10))):
        size = Resources(draw(st.integers(1, 3)) * 1000, 2**30)
        gang = None
        array = draw(st.none() | st.integers(2, 3))
        if array is None and draw(st.booleans()):
            n = draw(st.integers(2, 3))
            gang = Gang(n, 0, (NodeRange(0, n - 1, size),),
                        start_timeout_seconds=draw(st.sampled_from([3, 600])))  # fmt: skip
        needs = draw(st.lists(st.sampled_from([("lic", 1), ("tok", 1)]), max_size=1))
        jobs.append(JobSpec(
            "ns", f"d{i}", f"q{draw(st.integers(0, len(queues) - 1))}",
            gang.total() if gang is not None else size, created_at=float(i), token="t",
            array_size=array, retry=RetryStrategy(2), gang=gang, consumables=tuple(needs),
            share_identifier=draw(st.sampled_from(["a", "b"])),
        ))  # fmt: skip
    return ces, queues, jobs


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    depth_worlds(),
    st.lists(st.tuples(st.integers(0, 30), st.integers(0, 6)), min_size=5, max_size=30),
    st.integers(1, 6),
)
def test_depth_invariants_hold_over_busy_runs(
    world: tuple[list[ComputeEnvironment], list[JobQueue], list[JobSpec]],
    events: list[tuple[int, int]],
    late: int,
) -> None:
    """The same invariants where preemption, gangs and consumables are at work."""
    run(world, events, late)


def run(
    world: tuple[list[ComputeEnvironment], list[JobQueue], list[JobSpec]],
    events: list[tuple[int, int]],
    late: int,
) -> None:
    ces, queues, jobs = world
    cache = Cache()
    for ce in ces:
        cache.upsert_compute_environment(ce)
    for res in CONSUMABLES:
        cache.consumables.upsert(res)
    for q in queues:
        cache.upsert_queue(q, 0)
    # a job is on a cycle if it closes one among the jobs that have not finished yet (a cycle
    # through a job that already finished is no cycle: that dependency is settled)
    cycles: set[str] = set()
    by_key = {j.key: j for j in jobs}

    def submit(j: JobSpec, now: float) -> None:
        live = [
            by_key[k]
            for k, s in cache.jobs.items()
            if not s.phase.terminal or s.reason is Reason.DEPENDENCY_CYCLE
        ]
        cache.upsert_job(j, now)
        cycles.update(static_cycles([*live, j]))
        for key in cycles:  # cycles are rejected at once
            assert cache.jobs[key].phase is Phase.FAILED, key

    # some jobs arrive while others run (what preemption needs), one per event
    first = max(1, len(jobs) - late)
    for j in jobs[:first]:
        submit(j, 0)
    waiting = list(jobs[first:])
    qmap = {q.name: q for q in queues}
    model = Model()
    now = 0.0
    for pick, outcome in [*events, (0, 0)]:
        now += 1
        snap = cache.snapshot(now)
        before = fingerprint(cache)
        decisions = schedule(snap, now)
        assert fingerprint(cache) == before, "schedule() changed the cache it read"
        cache.assume_all(decisions, now)
        check_cycle(cache, decisions, model, qmap, cycles)
        check_arrays(cache, decisions)
        admits = [d for d in decisions if isinstance(d, Admit)]
        if outcome == 6 and admits:  # the API write of the last admission failed
            cache.forget(admits[-1], now)
            del model.running[(admits[-1].job_key, admits[-1].index)]
            for name, qty in cache.jobs[admits[-1].job_key].spec.consumables:
                if name == "tok":  # a rolled-back admission used nothing up
                    model.used_up[name] -= qty
            continue
        if outcome == 5:  # spec.terminate on some job
            spec = jobs[pick % first]
            cache.upsert_job(replace(spec, terminate_reason="stop"), now)
            continue
        if waiting:  # one late job arrives per event
            submit(waiting.pop(0), now)
        for key, phase in model.terminal.items():
            assert cache.jobs[key].phase is phase  # terminal phases never change
        if model.running:
            (key, index), _ = sorted(model.running.items(), key=str)[pick % len(model.running)]
            attempt = (
                cache.jobs[key].attempt
                if index is None
                else cache.jobs[key].array.child_attempt[index]
            )  # type: ignore[union-attr]
            del model.running[(key, index)]
            if outcome == 4:
                cache.attempt_started(key, index, attempt, now)
                model.running[(key, index)] = _where(cache, key, index)
            else:
                cache.attempt_finished(
                    key, index, attempt, now, exit_code=outcome % 3, interrupted=outcome == 3
                )


def check_preempt(cache: Cache, d: Preempt, model: Model, queues: dict[str, JobQueue]) -> None:
    """A victim runs; it belongs to a lower-priority queue, or to a share of the same
    fair-share queue (never the preemptor's share), and its queue's policy allowed it."""
    assert (d.job_key, d.index) in model.running, d
    policy = queues[d.preemptor_queue].preemption
    assert policy is not None, d
    victim_q, q = queues[d.queue], queues[d.preemptor_queue]
    if victim_q.priority < q.priority:
        assert policy.lower_priority or (policy.fair_share and d.queue == d.preemptor_queue)
    else:
        assert d.queue == d.preemptor_queue
        assert policy.fair_share
        assert q.fair_share is not None
        victim, preemptor = cache.jobs[d.job_key], cache.jobs[d.preemptor]
        assert victim.spec.share_identifier != preemptor.spec.share_identifier


def fingerprint(cache: Cache) -> object:
    """Everything of the cache a scheduling cycle could change."""
    jobs = []
    for key, j in sorted(cache.jobs.items()):
        arr = j.array
        jobs.append(
            (
                key, j.phase, j.reason, j.attempt, j.ce, j.ce_floor, j.queued, j.position,
                j.last_status, j.last_summary, j.failures, j.interruptions,
                None if arr is None else (
                    bytes(arr.child_phase), tuple(arr.child_attempt), sorted(arr.ready),
                    sorted(arr.active.items()), tuple(arr.counts), tuple(arr.failed),
                ),
            )
        )  # fmt: skip
    queues = [
        (q.spec.name, [j.key for lst in q.lists() for j in lst], q.min_size,
         sorted(q.running_by_share.items()), sorted(q.usage.items()))
        for q in cache.queues.values()
    ]  # fmt: skip
    ledgers = sorted((n, led.mcpu, led.memory, led.gpu) for n, led in cache.ledgers.items())
    pools = sorted((n, p.in_use, p.consumed) for n, p in cache.consumables.pools.items())
    victims = None if cache.victims is None else sorted(cache.victims.where.items(), key=str)
    return jobs, queues, ledgers, pools, victims, sorted(cache.releasing.items(), key=str)


def check_arrays(cache: Cache, decisions: list[Decision]) -> None:
    """Summaries add up to the size; a finished parent shows no waiting or running child."""
    for d in decisions:
        if isinstance(d, UpdateArraySummary):
            job = cache.jobs[d.job_key]
            assert job.array is not None
            assert sum(n for _, n in d.summary) == job.array.size, d
            if d.phase.terminal:
                assert {p for p, _ in d.summary} <= {Phase.SUCCEEDED, Phase.FAILED}, d
    for job in cache.jobs.values():
        if job.array is not None:
            assert sum(job.array.counts) == job.array.size
            if job.phase.terminal:
                assert job.array.terminal == job.array.size, (job.key, job.array.summary())


def _where(cache: Cache, key: str, index: int | None) -> tuple[str, Resources]:
    job = cache.jobs[key]
    ce = job.ce if index is None else job.array.active[index]  # type: ignore[union-attr]
    assert ce is not None
    return ce, job.spec.size
