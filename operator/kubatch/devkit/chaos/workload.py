"""The chaos tier's workload and what it must end in — pure.

A wave is a mixed list of BatchJobs (single jobs that succeed or fail, retries on chosen exit
codes that end well or are exhausted, an exit rule, attempt timeouts, terminations, arrays,
dependency chains and a fan-in) with, for each, the outcome its spec implies — computed here
from the spec alone (the exit codes the simulator will return, the retry rules, the
dependency conditions), never from what the operator says.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

API = "kubatch.io/v1alpha1"
NAMESPACE = "chaos"
JsonDict = dict[str, Any]

SPOT, ON_DEMAND, VICTIM, PROBE_CE = "chaos-spot", "chaos-ondemand", "chaos-victim", "chaos-probe"
MAIN, SIDE, PROBE = "chaos-main", "chaos-side", "chaos-probe"
"""Queues: ``main`` tries spot then on-demand; ``side`` the victim CE (deleted by a scenario)
then on-demand; ``probe`` its own small always-ready pool (recovery measurements)."""
CPU = "250m"
TIMEOUT = 60
"""The shortest attempt timeout the API allows (SEMANTICS §3)."""


@dataclass(frozen=True)
class Behaviour:
    """What the simulated container does, per attempt (annotations of the definition)."""

    duration: float = 5.0
    exit_code: int = 0
    by_attempt: Mapping[int, int] = field(default_factory=dict)
    by_index: Mapping[int, int] = field(default_factory=dict)

    def exit_of(self, attempt: int, index: int | None = None) -> int:
        if index is not None and index in self.by_index:
            return self.by_index[index]
        return self.by_attempt.get(attempt, self.exit_code)


@dataclass(frozen=True)
class Retry:
    """A retryStrategy: ``attempts`` and rules ``(exit code, action)`` tried in order."""

    attempts: int = 1
    rules: tuple[tuple[str, str], ...] = ()

    def action(self, exit_code: int) -> str | None:
        for code, action in self.rules:
            if code == str(exit_code) or code == "*":
                return action
        return None


@dataclass(frozen=True)
class Plan:
    """One BatchJob of a wave."""

    name: str
    kind: str
    queue: str = MAIN
    behaviour: Behaviour = field(default_factory=Behaviour)
    retry: Retry = field(default_factory=Retry)
    timeout: int | None = None
    array: int | None = None
    parallelism: int | None = None
    depends_on: tuple[str, ...] = ()
    terminate_after: float | None = None
    """Seconds after submission at which the driver sets ``spec.terminate``."""

    @property
    def definition(self) -> str:
        return f"def-{self.name}"


@dataclass(frozen=True)
class Outcome:
    """What a plan must end in: its phase, and how many of its attempts fail on their own
    (interruptions are extra attempts that never count; None: not checked)."""

    phase: str
    failures: int | None


def own_outcome(p: Plan) -> Outcome:
    """Pure: the outcome of a job from its own spec, dependencies aside."""
    if p.terminate_after is not None:
        return Outcome("Failed", None)
    if p.timeout is not None and p.behaviour.duration > p.timeout:
        return Outcome("Failed", p.retry.attempts)  # every attempt times out
    if p.array is not None:
        ok = all(_child_ok(p, i) for i in range(p.array))
        return Outcome("Succeeded" if ok else "Failed", None)
    failures = 0
    for attempt in range(1, p.retry.attempts + 1):
        code = p.behaviour.exit_of(attempt)
        if code == 0:
            return Outcome("Succeeded", failures)
        failures += 1
        if p.retry.action(code) == "Exit":
            break
    return Outcome("Failed", failures)


def failures_given(p: Plan, interrupted: Iterable[int]) -> int:
    """Pure: the failed attempts of a single job whose attempts ``interrupted`` (by number)
    were interrupted: those never count, and the simulator's exit code depends on the
    attempt's number (an interruption shifts which attempt fails)."""
    skip = set(interrupted)
    failures, attempt = 0, 0
    while True:
        attempt += 1
        if attempt in skip:
            continue
        if p.timeout is not None and p.behaviour.duration > p.timeout:
            code = -1  # timed out
        else:
            code = p.behaviour.exit_of(attempt)
        if code == 0:
            return failures
        failures += 1
        if failures >= p.retry.attempts or p.retry.action(code) == "Exit":
            return failures


def _child_ok(p: Plan, index: int) -> bool:
    for attempt in range(1, p.retry.attempts + 1):
        code = p.behaviour.exit_of(attempt, index)
        if code == 0:
            return True
        if p.retry.action(code) == "Exit":
            return False
    return False


def expected(plans: Sequence[Plan]) -> dict[str, Outcome]:
    """Pure: the final outcome of every plan — its own, unless a dependency did not succeed
    (condition ``Succeeded``, the default), which fails it (``DependencyFailed``), transitively."""
    by_name = {p.name: p for p in plans}
    out: dict[str, Outcome] = {}

    def resolve(name: str) -> Outcome:
        if name in out:
            return out[name]
        p = by_name[name]
        deps = [resolve(d) for d in p.depends_on]
        if any(d.phase != "Succeeded" for d in deps):
            result = Outcome("Failed", 0) if p.terminate_after is None else Outcome("Failed", None)
        else:
            result = own_outcome(p)
        out[name] = result
        return result

    for p in plans:
        resolve(p.name)
    return out


# ---------------------------------------------------------------------------- waves


@dataclass(frozen=True)
class Mix:
    """How many of each kind a wave has (the rest are plain successful jobs)."""

    fail: int = 2
    retry_then_ok: int = 2
    retry_exhausted: int = 2
    exit_rule: int = 1
    timeout: int = 0
    terminate: int = 2
    arrays: int = 1
    array_size: int = 6
    chains: int = 1
    chain_length: int = 3
    broken_chains: int = 1
    fan_in: int = 4
    side: int = 0
    """Jobs on the ``side`` queue (the victim CE's)."""

    def scaled(self, jobs: int) -> Mix:
        """Pure: the same proportions for a wave of ``jobs`` (the default mix is for 30)."""
        f = max(1.0, jobs / 30)

        def n(x: int) -> int:
            return round(x * f)

        return Mix(n(self.fail), n(self.retry_then_ok), n(self.retry_exhausted),
                   n(self.exit_rule), self.timeout, n(self.terminate), n(self.arrays),
                   self.array_size, n(self.chains), self.chain_length, n(self.broken_chains),
                   n(self.fan_in), n(self.side))  # fmt: skip


def wave(prefix: str, jobs: int, mix: Mix, *, seed: int = 0, duration: tuple[float, float] = (
        4.0, 12.0)) -> list[Plan]:  # fmt: skip
    """Pure (given ``seed``): ``jobs`` BatchJobs named ``<prefix>-<kind>-<n>``."""
    rng = random.Random(f"{prefix}/{seed}")

    def dur() -> float:
        return round(rng.uniform(*duration), 1)

    plans: list[Plan] = []

    def add(kind: str, **kw: Any) -> Plan:
        p = Plan(name=f"{prefix}-{kind}-{len(plans):03d}", kind=kind, **kw)
        plans.append(p)
        return p

    retry3 = Retry(3, (("3", "Retry"),))
    for _ in range(mix.fail):
        add("fail", behaviour=Behaviour(dur(), exit_code=2))
    for _ in range(mix.retry_then_ok):
        add("flaky", behaviour=Behaviour(dur(), by_attempt={1: 3}), retry=retry3)
    for _ in range(mix.retry_exhausted):
        add("exhausted", behaviour=Behaviour(dur(), exit_code=3), retry=Retry(2, (("3", "Retry"),)))
    for _ in range(mix.exit_rule):
        add("exit", behaviour=Behaviour(dur(), exit_code=4),
            retry=Retry(3, (("4", "Exit"), ("*", "Retry"))))  # fmt: skip
    for _ in range(mix.timeout):
        add("timeout", behaviour=Behaviour(600.0), timeout=TIMEOUT)
    for i in range(mix.terminate):
        add("terminate", behaviour=Behaviour(300.0), terminate_after=2.0 + 6.0 * (i % 3))
    for i in range(mix.arrays):
        failing = {3: 1} if i % 2 else {}
        add("array", behaviour=Behaviour(dur(), by_index=failing), array=mix.array_size,
            parallelism=max(2, mix.array_size // 2))  # fmt: skip
    for c in range(mix.chains + mix.broken_chains):
        broken = c >= mix.chains
        head = add("chain", behaviour=Behaviour(dur() / 2, exit_code=2 if broken else 0))
        prev = head.name
        for _ in range(mix.chain_length - 1):
            prev = add("chain", behaviour=Behaviour(dur() / 2), depends_on=(prev,)).name
    if mix.fan_in:
        parents = tuple(add("parent", behaviour=Behaviour(dur())).name for _ in range(mix.fan_in))
        add("fanin", behaviour=Behaviour(dur() / 2), depends_on=parents)
    for _ in range(mix.side):
        add("side", queue=SIDE, behaviour=Behaviour(dur() * 2))
    while len(plans) < jobs:
        add("ok", behaviour=Behaviour(dur()))
    return plans


def children(plans: Iterable[Plan]) -> int:
    """Pure: array children in ``plans``."""
    return sum(p.array or 0 for p in plans)


# ---------------------------------------------------------------------------- manifests


def definition(p: Plan) -> JsonDict:
    """Pure: the JobDefinition of one plan (its behaviour, retries and timeout)."""
    b = p.behaviour
    ann = {"sim.kubatch.io/duration": str(b.duration), "sim.kubatch.io/exit-code": str(
        b.exit_code)}  # fmt: skip
    if b.by_attempt:
        ann["sim.kubatch.io/exit-code-by-attempt"] = _codes(b.by_attempt)
    if b.by_index:
        ann["sim.kubatch.io/exit-code-by-index"] = _codes(b.by_index)
    container = {"name": "main", "image": "busybox", "command": ["true"],
                 "resources": {"requests": {"cpu": CPU, "memory": "256Mi"}}}  # fmt: skip
    spec: JsonDict = {"template": {"metadata": {"annotations": ann},
                                   "spec": {"containers": [container]}}}  # fmt: skip
    if p.retry.attempts > 1 or p.retry.rules:
        strategy: JsonDict = {"attempts": p.retry.attempts}
        if p.retry.rules:
            strategy["evaluateOnExit"] = [{"onExitCode": c, "action": a} for c, a in p.retry.rules]
        spec["retryStrategy"] = strategy
    if p.timeout is not None:
        spec["timeout"] = {"attemptDurationSeconds": p.timeout}
    return {"apiVersion": API, "kind": "JobDefinition",
            "metadata": {"name": p.definition, "namespace": NAMESPACE}, "spec": spec}  # fmt: skip


def batchjob(p: Plan) -> JsonDict:
    """Pure: the BatchJob of one plan."""
    spec: JsonDict = {"jobQueue": p.queue, "jobDefinition": p.definition}
    if p.array is not None:
        spec["arrayProperties"] = {"size": p.array, "parallelism": p.parallelism or p.array}
    if p.depends_on:
        spec["dependsOn"] = [{"jobName": d} for d in p.depends_on]
    return {"apiVersion": API, "kind": "BatchJob",
            "metadata": {"name": p.name, "namespace": NAMESPACE,
                         "labels": {"chaos.kubatch.io/kind": p.kind}}, "spec": spec}  # fmt: skip


def probe(name: str) -> list[JsonDict]:
    """Pure: a tiny job on the probe queue and its definition (recovery measurements)."""
    p = Plan(name=name, kind="probe", queue=PROBE, behaviour=Behaviour(1.0))
    return [definition(p), batchjob(p)]


def _codes(codes: Mapping[int, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(codes.items()))


def _ce(name: str, capacity: str, max_vcpus: int, min_vcpus: int = 0) -> JsonDict:
    return {"apiVersion": API, "kind": "ComputeEnvironment", "metadata": {"name": name},
            "spec": {"type": "Managed", "state": "Enabled", "computeResources": {
                "capacityType": capacity, "minvCpus": min_vcpus, "maxvCpus": max_vcpus,
                "instanceTypes": ["m5.xlarge"],
                "allocationStrategy": "SpotCapacityOptimized" if capacity == "Spot"
                else "BestFit"}}}  # fmt: skip


def _queue(name: str, ces: Sequence[str], priority: int = 1) -> JsonDict:
    order = [{"order": i + 1, "computeEnvironment": c} for i, c in enumerate(ces)]
    return {"apiVersion": API, "kind": "JobQueue", "metadata": {"name": name},
            "spec": {"priority": priority, "state": "Enabled",
                     "computeEnvironmentOrder": order}}  # fmt: skip


def victim_ce(max_vcpus: int = 16) -> JsonDict:
    return _ce(VICTIM, "OnDemand", max_vcpus)


def setup(max_vcpus: int = 48) -> list[JsonDict]:
    """Pure: the pools and queues of the chaos tier."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        _ce(SPOT, "Spot", max_vcpus),
        _ce(ON_DEMAND, "OnDemand", max_vcpus),
        victim_ce(),
        _ce(PROBE_CE, "OnDemand", 4, min_vcpus=4),
        _queue(MAIN, [SPOT, ON_DEMAND]),
        _queue(SIDE, [VICTIM, ON_DEMAND]),
        _queue(PROBE, [PROBE_CE], priority=100),
    ]
