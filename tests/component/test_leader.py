"""Two replicas on one FakeKube: one leads through the Lease, the other waits warm and takes
over; a replica that does not lead never writes; relists end attempts whose objects went."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from kubatch.adapters.fake import FakeKube
from kubatch.adapters.kube import (
    BATCHJOBS,
    COMPUTEENVIRONMENTS,
    JOBDEFINITIONS,
    JOBQUEUES,
    JOBS,
    LEASES,
    NAMESPACES,
    NODES,
    PODS,
    Resource,
)
from kubatch.adapters.protocol import OnEvent, OnSync, Trim
from kubatch.controller.leader import FencedKube, LeaderElector, NotLeading
from kubatch.controller.loop import wait_event
from kubatch.controller.replica import Replica
from kubatch.controller.settings import Election, LeaseTimings, Settings
from kubatch.metrics import Metrics
from tests.component.conftest import (
    NS,
    Clock,
    Harness,
    basic,
    make_job,
    make_queue,
)

JsonDict = dict[str, Any]
TIMINGS = LeaseTimings(duration=10, renew_deadline=7, retry_period=2)
KOPF_KINDS = (COMPUTEENVIRONMENTS, JOBQUEUES, JOBDEFINITIONS, BATCHJOBS, NODES, NAMESPACES)
WRITES = ("create", "patch", "delete")


@dataclass
class Client:
    """One replica's view of the shared FakeKube: counts its own writes, can be cut off."""

    kube: FakeKube
    name: str
    writes: list[tuple[str, str]] = field(default_factory=list)
    cut: bool = False

    def _check(self) -> None:
        if self.cut:
            raise ConnectionRefusedError(f"{self.name} cannot reach the API server")

    async def list(self, res: Resource, *, namespace: str | None = None,
                   labels: str | None = None, cached: bool = False) -> list[JsonDict]:  # fmt: skip
        self._check()
        return await self.kube.list(res, namespace=namespace, labels=labels, cached=cached)

    async def list_with_version(self, res: Resource, *, namespace: str | None = None,
                                labels: str | None = None, cached: bool = False,
                                trim: Any = None) -> tuple[list[JsonDict], str]:  # fmt: skip
        self._check()
        return await self.kube.list_with_version(res, namespace=namespace, labels=labels,
                                                 cached=cached, trim=trim)  # fmt: skip

    async def catch_up(self, res: Resource, resource_version: str, on_event: OnEvent, *,
                       namespace: str | None = None, seconds: int = 1) -> None:  # fmt: skip
        self._check()
        await self.kube.catch_up(res, resource_version, on_event, namespace=namespace,
                                 seconds=seconds)  # fmt: skip

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> JsonDict:
        self._check()
        return await self.kube.get(res, name, namespace)

    async def create(self, res: Resource, body: JsonDict, namespace: str | None = None) -> JsonDict:
        self._check()
        self.writes.append(("create", res.plural))
        return await self.kube.create(res, body, namespace)

    async def patch(self, res: Resource, name: str, patch: JsonDict, namespace: str | None = None,
                    *, status: bool = False) -> JsonDict:  # fmt: skip
        self._check()
        self.writes.append(("patch", res.plural))
        return await self.kube.patch(res, name, patch, namespace, status=status)

    async def delete(self, res: Resource, name: str, namespace: str | None = None, *,
                     background: bool = True) -> None:  # fmt: skip
        self._check()
        self.writes.append(("delete", res.plural))
        await self.kube.delete(res, name, namespace, background=background)

    async def watch(self, res: Resource, on_event: OnEvent, *, namespace: str | None = None,
                    labels: str | None = None, timeout_seconds: int = 300,
                    on_sync: OnSync | None = None, trim: Trim | None = None) -> None:  # fmt: skip
        await self.kube.watch(res, on_event, namespace=namespace, labels=labels, on_sync=on_sync,
                              trim=trim)  # fmt: skip

    async def close(self) -> None:
        return None

    def job_writes(self) -> list[tuple[str, str]]:
        return [w for w in self.writes if w[1] != "leases"]


class Pair:
    """Replicas a and b of the operator on one fake cluster; the test drives their election
    (``elect``), their scheduler cycles (``cycle``) and the cluster (the ``Harness``'s
    Job-controller and kubelet parts)."""

    def __init__(self) -> None:
        self.h = Harness()  # its own operator is not started: only its cluster parts are used
        self.kube = self.h.kube
        self.clock: Clock = self.h.clock
        self.mono = {"a": 0.0, "b": 0.0}
        self.clients: dict[str, Client] = {}
        self.replicas: dict[str, Replica] = {}

    def make(self, name: str) -> Replica:
        client = Client(self.kube, name)
        settings = Settings(identity=name, election=Election(timings=TIMINGS))

        def elector(on_change: Callable[[bool], Any]) -> LeaderElector:
            return LeaderElector(client, namespace="kubatch-system", name="kubatch-leader",
                                 identity=name, timings=TIMINGS, on_change=on_change,
                                 metrics=Metrics(), clock=lambda: self.mono[name],
                                 wall=self.clock)  # fmt: skip

        replica = Replica(client, settings, Metrics(), elector=elector, clock=self.clock)
        self.clients[name], self.replicas[name] = client, replica
        return replica

    async def start(self, name: str) -> Replica:
        replica = self.make(name)
        for res in KOPF_KINDS:  # what kopf delivers
            self.kube.subscribe(res, lambda kind, obj, r=res, rep=replica: rep.feed(
                r, obj, deleted=kind == "DELETED"))  # fmt: skip
        await replica.start(sync_timeout=1, elect=False)
        return replica

    async def kill(self, name: str) -> None:
        """SIGKILL: no release, no more renewals, its watches stop."""
        replica = self.replicas.pop(name)
        await replica.stop(release=False)
        self.kube._watchers = [w for w in self.kube._watchers
                               if getattr(w.on_event, "__self__", None) is not replica]  # fmt: skip

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        for k in self.mono:
            self.mono[k] += seconds

    async def elect(self) -> None:
        for replica in list(self.replicas.values()):
            await replica.elect_once()

    def leader(self) -> Replica:
        [leader] = [r for r in self.replicas.values() if r.leading]
        return leader

    async def cycle(self, n: int = 1) -> None:
        for _ in range(n):
            self.advance(1.0)
            await self.elect()
            for replica in self.replicas.values():
                if replica.op is not None and replica.may_write():
                    await replica.op.loop.cycle()

    async def stop(self) -> None:
        for name in list(self.replicas):
            await self.replicas.pop(name).stop(release=False)
        self.kube._watchers.clear()


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    p = Pair()
    try:
        yield p
    finally:
        await p.stop()


def lease(p: Pair) -> JsonDict:
    obj = p.kube.get_object(LEASES, "kubatch-leader", "kubatch-system")
    assert obj is not None
    return obj


async def test_one_leads_the_other_stands_by_and_never_writes(pair: Pair) -> None:
    basic(pair.h)
    a = await pair.start("a")
    await pair.elect()
    b = await pair.start("b")
    await pair.elect()
    assert a.leading
    assert not b.leading
    assert lease(pair)["spec"]["holderIdentity"] == "a"
    pair.h.apply(*(make_job(f"j{i}") for i in range(5)))
    await pair.cycle(3)
    pair.h.start_pods()
    await pair.cycle()
    for name in [j["metadata"]["name"] for j in pair.h.k8s_jobs()]:
        pair.h.finish_pod(name)
    await pair.cycle(2)
    assert all(pair.h.status(f"j{i}")["phase"] == "Succeeded" for i in range(5))
    assert pair.clients["b"].job_writes() == [], "a standby writes nothing"
    assert pair.clients["b"].writes == [], "not even the Lease while a renews it"
    assert b.op is None, "the standby's mirror is warm"
    assert b.mirror.count(BATCHJOBS) == 5, "the standby's mirror is warm"
    assert b.describe() == {"identity": "b", "leading": False, "holder": "a", "mirror": "complete"}


async def test_the_standby_takes_over_after_the_lease_duration_without_duplicates(
    pair: Pair,
) -> None:
    basic(pair.h, vcpus=2)
    a = await pair.start("a")
    await pair.elect()
    b = await pair.start("b")
    pair.h.apply(*(make_job(f"j{i}") for i in range(4)))
    await pair.cycle()
    assert len(pair.h.k8s_jobs()) == 2  # two fit; two wait
    pair.h.start_pods()
    await pair.cycle()
    await pair.kill("a")
    assert a.op is not None  # killed as it was
    # b takes over only once the record has been unchanged for the lease duration, as b's
    # own clock measures it
    for _ in range(4):
        await pair.cycle()
        assert not b.leading
    await pair.cycle(8)
    assert b.leading
    assert lease(pair)["spec"]["holderIdentity"] == "b"
    assert lease(pair)["spec"]["leaseTransitions"] == 1
    assert b.takeovers, "built from the mirror, which is dropped"
    assert b.mirror.count() == 0, "built from the mirror, which is dropped"
    assert len(pair.h.k8s_jobs()) == 2, "the running attempts are not admitted again"
    for name in [j["metadata"]["name"] for j in pair.h.k8s_jobs()]:
        pair.h.finish_pod(name)
    await pair.cycle(2)
    pair.h.start_pods()
    await pair.cycle()
    for job in pair.h.k8s_jobs():
        if pair.h.pod_of(job["metadata"]["name"])["status"]["phase"] == "Running":
            pair.h.finish_pod(job["metadata"]["name"])
    await pair.cycle(2)
    assert [pair.h.status(f"j{i}")["phase"] for i in range(4)] == ["Succeeded"] * 4
    assert len(pair.h.k8s_jobs()) == 4, "one Kubernetes Job per attempt, across the failover"
    assert all(len(pair.h.status(f"j{i}")["attempts"]) == 1 for i in range(4))


async def test_a_released_lease_is_taken_at_the_next_try(pair: Pair) -> None:
    a = await pair.start("a")
    await pair.elect()
    b = await pair.start("b")
    await pair.elect()
    await a.stop(release=True)
    del pair.replicas["a"]
    assert lease(pair)["spec"].get("holderIdentity") is None
    await pair.elect()
    assert b.leading


async def test_a_leader_cut_from_the_api_stops_writing_at_its_renew_deadline(pair: Pair) -> None:
    basic(pair.h)
    a = await pair.start("a")
    await pair.elect()
    b = await pair.start("b")
    await pair.elect()
    pair.clients["a"].cut = True  # a loses the API server; b still reaches it
    pair.advance(TIMINGS.renew_deadline - 0.5)
    assert a.may_write()
    pair.advance(1.0)
    assert not a.may_write(), "past the renew deadline: no write, even before a's next try"
    fence = a.fence
    assert fence is not None
    with pytest.raises(NotLeading):
        await fence.create(JOBS, {"metadata": {"name": "x"}}, namespace=NS)
    await pair.elect()
    assert not a.leading, "a dropped its state"
    assert a.op is None, "a dropped its state"
    pair.advance(TIMINGS.duration - TIMINGS.renew_deadline)
    await pair.elect()
    assert b.leading
    pair.h.apply(make_job("after"))
    await pair.cycle()
    # admitted by b (its Job exists; the Starting status may be held for the pod)
    assert pair.h.job_name("after") in {j["metadata"]["name"] for j in pair.h.k8s_jobs()}
    pair.clients["a"].cut = False  # healed: a finds b holding the Lease and stays standby
    await pair.cycle(2)
    assert not a.leading
    assert b.leading
    assert a.mirror.count(BATCHJOBS) == 1, "a's mirror is refilled while it stands by"


async def test_writes_in_flight_are_cancelled_when_leadership_is_lost() -> None:
    started = asyncio.Event()

    class Slow:
        async def create(
            self, res: Resource, body: JsonDict, namespace: str | None = None
        ) -> JsonDict:
            started.set()
            await asyncio.sleep(60)
            return body

    leading = [True]
    fence = FencedKube(Slow(), lambda: leading[0])  # type: ignore[arg-type]
    write = asyncio.create_task(fence.create(JOBS, {}, namespace=NS))
    await started.wait()
    leading[0] = False
    assert fence.revoke() == 1
    with pytest.raises(NotLeading, match="cancelled in flight"):
        await write
    with pytest.raises(NotLeading, match="refused"):
        await fence.create(JOBS, {}, namespace=NS)
    assert fence.refused == 2


async def test_a_writer_cancelled_as_leadership_goes_stays_cancelled() -> None:
    """The scheduling loop is cancelled right after its writes were revoked (standing by):
    its cancellation is not turned into NotLeading (it would keep cycling, and standing by
    would wait for it for ever)."""
    started = asyncio.Event()

    class Slow:
        async def create(
            self, res: Resource, body: JsonDict, namespace: str | None = None
        ) -> JsonDict:
            started.set()
            await asyncio.sleep(60)
            return body

    leading = [True]
    fence = FencedKube(Slow(), lambda: leading[0])  # type: ignore[arg-type]

    async def loop() -> None:
        while True:
            with contextlib.suppress(NotLeading):
                await fence.create(JOBS, {}, namespace=NS)
            await asyncio.sleep(0.01)

    task = asyncio.create_task(loop())
    await started.wait()
    leading[0] = False
    assert fence.revoke() == 1
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)
    assert task in done, "the loop swallowed its cancellation"
    assert task.cancelled()


async def test_a_replica_that_finds_the_lease_free_has_admitted_when_its_start_returns(
    pair: Pair,
) -> None:
    """kopf starts its watches (and replays every object as an event) only after the start
    returns: the takeover and the first cycle come first."""
    basic(pair.h)
    pair.h.apply(*(make_job(f"j{i}") for i in range(3)))
    a = pair.make("a")
    await a.start(sync_timeout=1, elect=True, first_cycle_timeout=5)
    assert a.leading
    assert a.op is not None
    assert a.op.loop.decided.is_set()
    assert len(pair.h.k8s_jobs()) == 3, "admitted by the first cycle, before start returned"
    b = pair.make("b")  # the Lease is held: b stands by and returns at once
    await b.start(sync_timeout=1, elect=True, first_cycle_timeout=5)
    assert not b.leading
    assert b.op is None
    assert len(pair.h.k8s_jobs()) == 3


async def test_a_job_submitted_after_the_starts_lists_is_admitted_before_kopf_watches(
    pair: Pair,
) -> None:
    """A BatchJob created while the replica lists (after its list's version) reaches it by the
    start's catch-up watch, not only among the thousands of kopf's replayed events."""
    basic(pair.h)
    pair.h.apply(make_job("early"), make_job("late"))
    a = pair.make("a")
    client = pair.clients["a"]
    late = pair.kube.get_object(BATCHJOBS, "late", NS)
    real_list = client.list_with_version

    async def listed_before_late(res: Resource, **kw: Any) -> tuple[list[JsonDict], str]:
        items, version = await real_list(res, **kw)
        if res == BATCHJOBS:  # the list was taken just before "late" was created
            items = [o for o in items if o["metadata"]["name"] != "late"]
        return items, version

    caught: list[str] = []

    async def catch_up(res: Resource, version: str, on_event: Any, **kw: Any) -> None:
        caught.append(version)
        on_event("ADDED", late)

    client.list_with_version = listed_before_late  # type: ignore[method-assign]
    client.catch_up = catch_up  # type: ignore[method-assign]
    await a.start(sync_timeout=1, elect=True, first_cycle_timeout=5)
    assert caught, "the start caught up from its list's version"
    await pair.cycle()
    owners = {j["metadata"]["labels"]["kubatch.io/batchjob"] for j in pair.h.k8s_jobs()}
    assert owners == {"early", "late"}


async def test_a_long_takeover_lets_the_event_loop_run_and_loses_no_event(pair: Pair) -> None:
    """A rebuild of 100,000 jobs takes about a minute: it yields now and then, so that the
    Lease is renewed meanwhile (it was lost at the renew deadline, and the takeover began
    again, for ever); the events that arrive during it are replayed after it."""
    basic(pair.h, vcpus=1)
    pair.h.apply(*(make_job(f"j{i:04d}") for i in range(1200)))  # 1200 > 2 x YIELD_EVERY
    a = await pair.start("a")
    during: list[bool] = []

    async def meanwhile() -> None:
        while not a.leading:
            if a._buffer is not None and not during:  # the takeover's rebuild runs
                during.append(True)
                pair.h.apply(make_job("late"))  # kopf delivers it now, mid-rebuild
            await asyncio.sleep(0)

    ticker = asyncio.create_task(meanwhile())
    await pair.elect()
    await asyncio.wait_for(ticker, 5)
    assert during, "the event loop ran during the rebuild"
    assert a.leading
    assert a.op is not None
    assert a.op.jobs.get(f"{NS}/late") is not None, "the event of meanwhile was replayed"
    assert len(a.op.jobs) == 1201


async def test_two_replicas_racing_for_a_free_lease_elect_exactly_one(pair: Pair) -> None:
    a = await pair.start("a")
    b = await pair.start("b")
    await asyncio.gather(a.elect_once(), b.elect_once())
    assert [a.leading, b.leading].count(True) == 1


async def test_a_job_deleted_while_the_watch_was_down_ends_its_attempt(h: Harness) -> None:
    basic(h)
    h.apply(make_job("a"))
    await h.cycle()
    h.start_pods()
    await h.cycle()
    assert h.status("a")["phase"] == "Running"
    h.kube.hold()  # the watch is down: what happens now is not seen
    h.kube.remove(JOBS, h.job_name("a"), NS)
    h.kube.held.clear()
    assert h.kube.relist() == 2  # pods and Jobs: 410 Gone, listed again
    await h.cycle(2)
    st = h.status("a")
    assert st["attempts"][0]["interrupted"] is True, st
    assert st["phase"] == "Starting", "retried, not failed"
    assert len(st["attempts"]) == 2, "retried, not failed"


async def test_a_pod_deleted_while_the_watch_was_down_ends_its_attempt(h: Harness) -> None:
    basic(h)
    h.apply(make_job("a"))
    await h.cycle()
    h.start_pods()
    await h.cycle()
    h.kube.hold()
    pod = h.pod_of(h.job_name("a"))
    h.kube.remove(PODS, pod["metadata"]["name"], NS)
    h.kube.held.clear()
    h.kube.relist()
    await h.cycle(2)
    st = h.status("a")
    assert st["attempts"][0]["interrupted"] is True, st
    assert len(st["attempts"]) == 2


async def test_a_relist_keeps_attempts_whose_objects_are_newer_than_the_list(h: Harness) -> None:
    basic(h)
    h.apply(make_job("a"))
    await h.cycle()
    # The list was taken before the Job existed (the Job is created meanwhile): a suspect
    # that the API server clears.
    h.op.sync(JOBS, [])
    await h.cycle()
    assert h.status("a")["phase"] == "Starting"
    assert len(h.status("a")["attempts"]) == 1
    assert len(h.k8s_jobs()) == 1


async def test_every_replica_knows_the_queues_and_definitions_for_the_webhook(pair: Pair) -> None:
    """The webhook (served by every replica) looks a new BatchJob's queue and definition up in
    what the replica's watches delivered, leading or standing by, taking over or not."""
    a = await pair.start("a")
    await pair.elect()
    b = await pair.start("b")
    await pair.elect()
    assert a.leading
    assert not b.leading
    assert a.known(JOBQUEUES, "q") is None, "nothing applied yet: the webhook reads the API"
    basic(pair.h)
    for r in (a, b):
        queue = r.known(JOBQUEUES, "q")
        assert queue is not None
        assert queue["spec"]["priority"] == 1
        assert r.known(JOBDEFINITIONS, "d", NS) is not None
        assert r.known(JOBDEFINITIONS, "d", "elsewhere") is None
        assert r.known(BATCHJOBS, "d", NS) is None, "only what a job names"
    pair.h.apply(make_queue(priority=7))
    assert all(r.known(JOBQUEUES, "q")["spec"]["priority"] == 7 for r in (a, b))  # type: ignore[index]
    pair.h.delete("JobDefinition", "d")
    assert a.known(JOBDEFINITIONS, "d", NS) is None
    assert b.known(JOBDEFINITIONS, "d", NS) is None
    await pair.kill("a")
    pair.advance(TIMINGS.duration + 1)
    await pair.elect()
    assert b.leading
    assert b.known(JOBQUEUES, "q") is not None, "kept across the takeover"


async def test_a_loop_cancelled_as_it_is_woken_stops(h: Harness) -> None:
    """Python 3.11's ``asyncio.wait_for`` swallows a cancellation that arrives as the event it
    waits for is set: the scheduling loop must stop anyway, or the takeover after a lost
    Lease waits for ever behind it (seen in the chaos tier: an API server restart cost the
    leader its Lease, it won it back, and never took over)."""
    basic(h)
    loop = h.op.loop
    for _ in range(20):
        task = asyncio.create_task(loop.run())
        await asyncio.sleep(0)  # the loop now waits for a wake-up
        loop.wake.set()
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2)
        assert done, "the cancellation was swallowed: the loop runs on"


async def test_wait_event_passes_a_cancellation_through() -> None:
    event = asyncio.Event()
    task = asyncio.create_task(wait_event(event, 5.0))
    await asyncio.sleep(0)
    event.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(wait_event(asyncio.Event(), 0.01), 1)  # a timeout is no error


async def test_the_start_watches_batchjobs_itself_until_kopfs_replay_is_through(
    pair: Pair,
) -> None:
    """kopf's first list replays every BatchJob before a job submitted meanwhile reaches the
    intake (10,000 took a minute, and jobs submitted in it waited up to 71 s for a Job): a
    watch of kubatch's own, from the start's list, hands them over until kopf has replayed
    as many BatchJobs as that list held."""
    basic(pair.h)
    pair.h.apply(make_job("a0"), make_job("a1"))
    a = pair.make("a")
    client = pair.clients["a"]
    asked: list[int] = []
    ended = asyncio.Event()

    async def bridge(res: Resource, version: str, on_event: Any, **kw: Any) -> None:
        asked.append(int(kw.get("seconds", 1)))
        try:
            await asyncio.Event().wait()  # the server ends it, or the replica does
        finally:
            ended.set()

    client.catch_up = bridge  # type: ignore[method-assign]
    await a.start(sync_timeout=1, elect=True, first_cycle_timeout=5)
    assert asked
    assert asked[0] >= 60, "a watch that lasts through the replay, not a moment"
    assert not ended.is_set()
    a.replayed(BATCHJOBS)  # kopf hands over the first of the two it lists
    a.replayed(JOBQUEUES)  # another kind: not counted
    await asyncio.sleep(0)
    assert not ended.is_set()
    a.replayed(BATCHJOBS)
    await asyncio.wait_for(ended.wait(), 1)
    await a.stop()
