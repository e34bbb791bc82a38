"""The chaos run: for each scenario, a wave of BatchJobs submitted in batches, the fault
injected once per batch while the batch runs, probe jobs submitted the moment each fault ends,
then — once every job of the wave has finished — the invariants checked from the cluster.

``await run(workdir, size, scenarios)`` returns a report (a dict, written as JSON by
``kubatch bench chaos``): per scenario the jobs, the faults and what they did, the findings
(:class:`~kubatch.devkit.chaos.invariants.Findings`: lost, wrong phase, duplicate attempts,
orphans, retries used by interruptions), whether the completion counters summed over the
operators' lifetimes agree with the statuses, and the recovery times (end of a fault to the
first admission of a probe job, on its own always-ready pool).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import platform
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kubatch.adapters.kube import BATCHJOBS, JOBDEFINITIONS, JOBS, PODS, ApiError, Kube, Resource
from kubatch.api import labels as L
from kubatch.devkit.chaos import invariants, workload
from kubatch.devkit.chaos.cluster import Cluster
from kubatch.devkit.chaos.scenarios import FULL, SCENARIOS, Fault, Scenario, Size
from kubatch.devkit.chaos.workload import NAMESPACE, Mix, Outcome, Plan
from kubatch.devkit.polling import eventually_async
from kubatch.devkit.stats import percentile

METRICS_SETTLE_S = 10.0
"""How long the completions counted may lag the statuses at a scenario's end."""

log = logging.getLogger("kubatch.chaos")
JsonDict = dict[str, Any]
Say = Callable[[str], None]
KINDS: dict[str, Resource] = {"JobDefinition": JOBDEFINITIONS, "BatchJob": BATCHJOBS}


async def _retry(what: str, call: Callable[[], Any], timeout: float = 120) -> Any:
    """An API call that may meet a fault (the API server restarting): retried."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await call()
        except (ApiError, OSError, TimeoutError) as exc:
            if isinstance(exc, ApiError) and exc.conflict:
                return None  # created already
            if time.monotonic() > deadline:
                raise
            log.info("%s: %s; retrying", what, exc)
            await asyncio.sleep(1.0)


async def create_all(kube: Kube, docs: Sequence[JsonDict], limit: int = 16) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(doc: JsonDict) -> None:
        res = KINDS[doc["kind"]]
        async with sem:
            await _retry(f"create {doc['metadata']['name']}",
                         lambda: kube.create(res, doc, namespace=NAMESPACE))  # fmt: skip

    await asyncio.gather(*(one(d) for d in docs))


class Runner:
    """One chaos run on one cluster (see the module doc)."""

    def __init__(self, cluster: Cluster, size: Size, *, seed: int = 7, say: Say = print) -> None:
        self.cluster = cluster
        self.size = size
        self.rng = random.Random(seed)
        self.seed = seed
        self.say = say
        self._tasks: list[asyncio.Task[Any]] = []

    @property
    def kube(self) -> Kube:
        assert self.cluster.kube is not None
        return self.cluster.kube

    async def setup(self) -> None:
        from kubatch.adapters.kube import COMPUTEENVIRONMENTS, JOBQUEUES, NAMESPACES

        kinds = {"Namespace": NAMESPACES, "ComputeEnvironment": COMPUTEENVIRONMENTS,
                 "JobQueue": JOBQUEUES}  # fmt: skip
        for doc in workload.setup():
            await self.kube.apply(kinds[doc["kind"]], doc, field_manager="chaos")
        # a first probe: the probe pool has its node and everything answers
        await self.probe("warm-up", timeout=180)

    # ------------------------------------------------------------------ one scenario

    async def scenario(self, index: int, scenario: Scenario) -> JsonDict:
        name = scenario.name
        mix = Mix(timeout=1 if self.size.timeouts else 0, side=3 if scenario.side_jobs else 0)
        plans = workload.wave(f"s{index}", self.size.jobs, mix.scaled(self.size.jobs),
                              seed=self.seed)  # fmt: skip
        outcomes = workload.expected(plans)
        batches = _split(plans, scenario.events)
        self.say(f"[{name}] {len(plans)} jobs ({workload.children(plans)} array children), "
                 f"{scenario.events} fault(s): {scenario.title}")  # fmt: skip
        await create_all(self.kube, [workload.definition(p) for p in plans])
        await asyncio.to_thread(self.cluster.scrape_all, strict=True)
        before = self._completions()
        takeovers_before = self.cluster.counter("kubatch_leader_changes_total", to="leader")
        t0 = time.monotonic()
        faults: list[Fault] = []
        recoveries: list[float] = []
        probes: list[tuple[str, float]] = []
        for event, batch in enumerate(batches):
            await scenario.before(event)
            await create_all(self.kube, [workload.batchjob(p) for p in batch])
            for p in batch:
                if p.terminate_after is not None:
                    self._tasks.append(asyncio.create_task(self._terminate(p)))
            await self._until_running(batch)
            fault = await scenario.inject(event)
            faults.append(fault)
            probe = f"s{index}-probe-{event}"
            probes.append((probe, fault.ended))
            await self._submit_probe(probe)  # the moment the fault ends
            await scenario.recover(event, fault)
            self.say(f"[{name}] fault {event + 1}/{scenario.events}: {fault.what} "
                     f"({fault.ended - fault.started:.1f}s) {fault.notes or ''}")  # fmt: skip
        after = getattr(scenario, "after", None)
        if after is not None:
            await after()
        for probe, ended in probes:
            at = await self._admitted(probe)
            if at is not None:
                recoveries.append(max(0.0, at - ended))
        done = await self._until_finished(plans, name)
        bjs, findings = await self._check(plans, outcomes)
        # the wave's queues only: probes (and the warm-up's) may still finish around the scrape
        want = invariants.completions(bjs, {p.name for p in plans})
        kills = sum(1 for f in faults if f.what.startswith("SIGKILL op-"))
        got, takeovers, metrics_ok = await self._counted(want, before, takeovers_before, kills)
        result: JsonDict = {
            "scenario": name,
            "title": scenario.title,
            **findings.summary(),
            "faults_injected": len(faults),
            "faults": [
                {"what": f.what, "seconds": round(f.ended - f.started, 2), **f.notes}
                for f in faults
            ],
            "recovery_s": [round(r, 2) for r in recoveries],
            "recovery_p50_s": _round(percentile(recoveries, 50)),
            "recovery_max_s": _round(max(recoveries) if recoveries else None),
            "probes_admitted": len(recoveries),
            "probes": len(probes),
            "completions_counted": {f"{q}/{ph}": n for (q, ph), n in sorted(got.items())},
            "completions_in_status": {f"{q}/{ph}": n for (q, ph), n in sorted(want.items())},
            "metrics_agree": metrics_ok,
            "leader_takeovers": takeovers,
            "seconds": round(time.monotonic() - t0, 1),
            "finished_in_time": done,
            "problems": findings.problems(),
        }
        result["ok"] = bool(findings.ok and metrics_ok and len(recoveries) == len(probes))
        self.say(f"[{name}] {'OK' if result['ok'] else 'FAILED'}: lost {len(findings.lost)}, "
                 f"duplicates {len(findings.duplicate_attempts)}, orphans "
                 f"{len(findings.orphans)}, retries used {len(findings.retries_used)}, "
                 f"recovery p50 {result['recovery_p50_s']}s max {result['recovery_max_s']}s, "
                 f"metrics {'agree' if metrics_ok else f'{got} vs {dict(want)}'}")  # fmt: skip
        if not result["ok"]:
            self.say(f"[{name}] problems: {result['problems']}")
        return result

    async def _check(
        self, plans: Sequence[Plan], outcomes: Mapping[str, Outcome], settle: float = 30.0
    ) -> tuple[list[JsonDict], invariants.Findings]:
        """The invariants from the cluster's objects. Work still stopping (the pod of a job
        terminated a moment ago, in its grace period) is not an orphan yet: while orphans are
        the only finding, the check is made again for up to ``settle`` seconds."""
        owned = f"{L.MANAGED_BY}={L.MANAGER}"
        deadline = time.monotonic() + settle
        while True:
            bjs = await self._list(BATCHJOBS, None)
            jobs = await self._list(JOBS, owned)
            pods = await self._list(PODS, owned)
            findings = invariants.check(plans, outcomes, bjs, jobs, pods)
            only_orphans = (
                findings.orphans and not dataclasses.replace(findings, orphans=[]).problems()
            )
            if not only_orphans or time.monotonic() > deadline:
                return bjs, findings
            await asyncio.sleep(2.0)

    async def _list(self, res: Resource, labels: str | None) -> list[JsonDict]:
        out: list[JsonDict] = await _retry(
            f"list {res.plural}",
            lambda: self.kube.list(res, namespace=NAMESPACE, labels=labels),
        )
        return out

    async def _counted(
        self,
        want: Counter[tuple[str, str]],
        before: Counter[tuple[str, str]],
        takeovers_before: float,
        kills: int,
        settle: float = METRICS_SETTLE_S,
    ) -> tuple[dict[tuple[str, str], int], int, bool]:
        """The completions counted since ``before`` (every live replica scraped afresh) and
        whether they agree with the statuses, waiting up to ``settle`` seconds for them to.

        A count follows its status write, and may lag the status the cluster shows: a patch
        the API server applied while its answer was lost (it was killed mid-request) is
        counted when the operator's retry of it is answered. A killed process takes its
        unscraped increments with it, and a leader that stops leading mid-write leaves a job
        finished that the next leader does not count: at most one short per kill or
        takeover. Never over."""
        deadline = time.monotonic() + settle
        while True:
            await asyncio.to_thread(self.cluster.scrape_all, strict=True)
            got = {k: round(v) for k, v in (self._completions() - before).items()
                   if v and k[0] != workload.PROBE}  # fmt: skip
            takeovers = round(
                self.cluster.counter("kubatch_leader_changes_total", to="leader") - takeovers_before
            )
            exact = _agree(got, want, tolerance=0)
            over = not _agree(got, want, tolerance=sum(want.values()))
            if exact or over or time.monotonic() > deadline:
                return got, takeovers, exact or _agree(got, want, max(kills, takeovers))
            await asyncio.sleep(1.0)

    def _completions(self) -> Counter[tuple[str, str]]:
        out: Counter[tuple[str, str]] = Counter()
        for r in self.cluster.replicas.values():
            for samples in r.lifetimes.values():
                for labels, value in (samples.get("kubatch_job_completions_total") or {}).items():
                    d = dict(labels)
                    out[(d.get("queue", ""), d.get("phase", ""))] += value  # type: ignore[assignment]
        return out

    async def _terminate(self, p: Plan) -> None:
        assert p.terminate_after is not None
        await asyncio.sleep(p.terminate_after)
        patch = {"spec": {"terminate": {"reason": "terminated by the chaos run"}}}
        await _retry(
            f"terminate {p.name}",
            lambda: self.kube.patch(BATCHJOBS, p.name, patch, namespace=NAMESPACE),
        )

    async def _until_running(self, batch: Sequence[Plan], timeout: float = 60) -> None:
        """Until a quarter of the batch runs (the fault must hit work in flight)."""
        names = {p.name for p in batch}
        want = max(1, len(batch) // 4)

        async def running() -> bool:
            bjs = await self.kube.list(BATCHJOBS, namespace=NAMESPACE)
            n = sum(1 for b in bjs if b["metadata"]["name"] in names
                    and (b.get("status") or {}).get("phase") == "Running")  # fmt: skip
            return n >= want

        try:
            await eventually_async(running, what="the batch to run", timeout=timeout, every=1)
        except AssertionError:
            self.say(f"  (fewer than {want} jobs of the batch running after {timeout:g}s)")

    async def _until_finished(self, plans: Sequence[Plan], name: str, timeout: float = 420) -> bool:
        names = {p.name for p in plans}

        async def left() -> str:
            bjs = await self.kube.list(BATCHJOBS, namespace=NAMESPACE)
            phases = Counter((b.get("status") or {}).get("phase") or "none" for b in bjs
                             if b["metadata"]["name"] in names)  # fmt: skip
            waiting = sum(n for ph, n in phases.items() if ph not in invariants.TERMINAL)
            return "" if waiting == 0 and sum(phases.values()) == len(names) else str(
                dict(phases))  # fmt: skip

        state = {"last": ""}

        async def finished() -> bool:
            try:
                state["last"] = await left()
            except (ApiError, OSError, TimeoutError) as exc:
                state["last"] = str(exc)
                return False
            return state["last"] == ""

        try:
            await eventually_async(finished, what=f"the {name} wave to finish", timeout=timeout,
                                   every=2, report=lambda m: self.say(f"  {m}"),
                                   progress=lambda: state["last"], report_every=30)  # fmt: skip
        except AssertionError:
            self.say(f"[{name}] not finished after {timeout:g}s: {state['last']}")
            return False
        return True

    # ------------------------------------------------------------------ probes

    async def _submit_probe(self, name: str) -> None:
        await create_all(self.kube, workload.probe(name))

    async def _admitted(self, name: str, timeout: float = 180) -> float | None:
        async def seen() -> float:
            return self.cluster.admitted_at(name) or 0.0

        try:
            return await eventually_async(
                seen, what=f"probe {name} admitted", timeout=timeout, every=0.1
            )
        except AssertionError:
            return None

    async def probe(self, name: str, timeout: float = 60) -> float | None:
        t0 = time.monotonic()
        await self._submit_probe(name)
        at = await self._admitted(name, timeout)
        return None if at is None else at - t0

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _split(plans: Sequence[Plan], n: int) -> list[list[Plan]]:
    """Pure: ``n`` batches; a dependency stays in its dependent's batch or an earlier one."""
    if n <= 1:
        return [list(plans)]
    batches: list[list[Plan]] = [[] for _ in range(n)]
    where: dict[str, int] = {}
    for i, p in enumerate(plans):
        b = max([i * n // len(plans), *(where[d] for d in p.depends_on if d in where)])
        where[p.name] = b
        batches[b].append(p)
    return batches


def _agree(got: dict[tuple[str, str], int], want: Counter[tuple[str, str]], tolerance: int) -> bool:
    """Counters summed over the lifetimes vs statuses: equal, except that a SIGKILL may take
    the increments made since the last scrape with it (at most ``tolerance`` short)."""
    keys = set(got) | set(want)
    short = sum(max(0, want.get(k, 0) - got.get(k, 0)) for k in keys)
    over = sum(max(0, got.get(k, 0) - want.get(k, 0)) for k in keys)
    return over == 0 and short <= tolerance


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


async def run(
    workdir: Path,
    size: Size = FULL,
    scenarios: Sequence[str] = tuple(SCENARIOS),
    *,
    seed: int = 7,
    say: Say = print,
    cwd: Path | None = None,
) -> JsonDict:
    """A whole chaos run on a cluster of its own (started and stopped here)."""
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    t0 = time.monotonic()
    cluster = Cluster(workdir)
    results: list[JsonDict] = []
    runner: Runner | None = None
    try:
        say(f"chaos: starting a plane, the simulator and two operators in {workdir}")
        await cluster.start(cwd=cwd)
        say(f"chaos: {await cluster.leading()} leads; setting up pools and queues")
        runner = Runner(cluster, size, seed=seed, say=say)
        await runner.setup()
        for i, name in enumerate(scenarios, 1):
            scenario = SCENARIOS[name](cluster, size, runner.rng)
            results.append(await runner.scenario(i, scenario))
    finally:
        logs = cluster.logs(40)
        if runner is not None:
            await runner.close()
        await cluster.stop()
    return {
        "benchmark": "chaos",
        "size": {
            "jobs_per_scenario": size.jobs,
            "kills": size.kills,
            "blackhole_s": size.blackhole,
            "storms": size.storms,
            "timeouts": size.timeouts,
        },
        "seed": seed,
        "jobs": sum(r["jobs"] for r in results),
        "array_children": sum(r["array_children"] for r in results),
        "scenarios": results,
        "ok": all(r["ok"] for r in results) and len(results) == len(scenarios),
        "seconds": round(time.monotonic() - t0, 1),
        "machine": {"cpus": _cpus(), "python": platform.python_version()},
        "logs_tail": logs if not all(r["ok"] for r in results) else "",
    }


def _cpus() -> int:
    import os

    return os.cpu_count() or 0
