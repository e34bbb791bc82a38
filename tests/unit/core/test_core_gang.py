"""Multi-node parallel jobs in the core: all-or-nothing admission on one CE, fail fast per
node, the start timer that releases a gang whole, restarts."""

from __future__ import annotations

from dataclasses import replace

import pytest
from tests.unit.core.core_factories import (
    GI,
    admitted,
    cycle,
    make_cache,
    make_ce,
    make_job,
    make_queue,
    of_type,
)

from kubatch.core.decisions import Admit, Fail, Retry, SetWaiting, Succeed, Terminate
from kubatch.core.gang import gang_ce_fit, node_job_name
from kubatch.core.lifecycle import Phase, Reason
from kubatch.core.model import Gang, JobSpec, NodeRange, Shape
from kubatch.core.naming import job_name_for_attempt
from kubatch.core.resources import Resources

NODE = Resources(2000, 2 * GI)


def make_gang(n: int = 4, node: Resources = NODE, main: int = 0, timeout: int = 60) -> Gang:
    return Gang(n, main, (NodeRange(0, n - 1, node),), start_timeout_seconds=timeout)


def gang_job(name: str, gang: Gang | None = None, queue: str = "q", **kw: object) -> JobSpec:
    g = gang or make_gang()
    return replace(make_job(name, queue, **kw), size=g.total(), gang=g)  # type: ignore[arg-type]


def test_total_and_node_sizes() -> None:
    g = Gang(5, 2, (NodeRange(0, 0, Resources(4000, GI)), NodeRange(1, 4, NODE)))
    assert g.total() == Resources(4000 + 4 * 2000, GI + 4 * 2 * GI)
    assert g.node_size(0) == Resources(4000, GI)
    assert g.node_size(4) == NODE
    with pytest.raises(IndexError):
        g.node_size(5)


def test_a_gang_is_one_admission_of_every_node_on_one_ce() -> None:
    c = make_cache((make_ce("a", vcpus=6), make_ce("b", vcpus=8)), (make_queue(ces=("a", "b")),))
    c.upsert_job(gang_job("mnp"), 0)
    ds = cycle(c, 1)
    [adm] = of_type(ds, Admit)
    assert isinstance(adm, Admit)
    # 4 nodes x 2 vCPU do not fit in "a" (6): the whole gang goes to "b", none to "a"
    assert (adm.compute_environment, adm.resources) == ("b", make_gang().total())
    assert adm.index is None
    assert adm.k8s_job_name == node_job_name("mnp", "uid", 0, 1)
    assert c.allocated("a") == Resources()
    assert c.allocated("b").mcpu == 8000


def test_no_partial_admission_while_the_room_is_short() -> None:
    c = make_cache((make_ce(vcpus=8),), (make_queue(),))
    c.upsert_job(make_job("running", vcpus=1), 0)
    cycle(c, 0)
    c.upsert_job(gang_job("mnp"), 0)  # needs 8, 7 are left
    c.upsert_job(make_job("small", vcpus=2), 0)
    ds = cycle(c, 1)
    assert admitted(ds) == ["ns/small"]  # no head-of-line blocking, no piece of the gang
    waits = {d.job_key: d for d in ds if isinstance(d, SetWaiting)}
    assert waits["ns/mnp"].reason is Reason.INSUFFICIENT_CAPACITY
    assert c.allocated("ce").mcpu == 3000


def test_main_node_names_the_attempt() -> None:
    g = make_gang(main=2)
    c = make_cache((make_ce(vcpus=8),), (make_queue(),))
    c.upsert_job(gang_job("mnp", g), 0)
    [adm] = of_type(cycle(c, 1), Admit)
    assert isinstance(adm, Admit)
    assert adm.k8s_job_name == job_name_for_attempt("mnp", "uid", 2, 1)


def test_fail_fast_when_a_node_fits_no_shape() -> None:
    small = Shape("m5.large", Resources(2000, 8 * GI))
    ce = make_ce(vcpus=64, shapes=(small,))
    g = Gang(3, 0, (NodeRange(0, 0, Resources(4000, GI)), NodeRange(1, 2, NODE)))
    c = make_cache((ce,), (make_queue(),))
    c.upsert_job(gang_job("mnp", g), 0)
    [fail] = of_type(cycle(c, 1), Fail)
    assert isinstance(fail, Fail)
    assert fail.reason is Reason.NO_COMPUTE_ENVIRONMENT_CAN_FIT
    assert "node 0:" in fail.message
    assert "4 vCPU > 2" in fail.message
    # nodes 1:2 fit a shape on their own: the same gang without node 0's size fits
    assert gang_ce_fit(make_gang(2), ce).fit.value == "Yes"


def test_fail_fast_when_the_whole_gang_exceeds_max_vcpus() -> None:
    c = make_cache((make_ce(vcpus=6),), (make_queue(),))
    c.upsert_job(gang_job("mnp"), 0)
    [fail] = of_type(cycle(c, 1), Fail)
    assert isinstance(fail, Fail)
    assert "its 4 nodes need 8 vCPU > maxvCpus 6" in fail.message


def test_released_whole_when_not_every_node_runs_in_time_and_not_counted() -> None:
    c = make_cache((make_ce(vcpus=8),), (make_queue(),))
    c.upsert_job(gang_job("mnp", make_gang(timeout=60)), 0)
    cycle(c, 0)
    assert of_type(cycle(c, 59), Terminate) == []
    [stop] = of_type(cycle(c, 61), Terminate)
    assert isinstance(stop, Terminate)
    assert (stop.reason, stop.attempt) == (Reason.GANG_START_TIMEOUT, 1)
    assert stop.k8s_job_name == node_job_name("mnp", "uid", 0, 1)
    assert c.allocated("ce").mcpu == 8000  # held until the nodes are gone
    c.attempt_finished("ns/mnp", None, 1, 62, exit_code=None, interrupted=True)
    assert c.allocated("ce") == Resources()
    ds = cycle(c, 63)
    [retry] = of_type(ds, Retry)
    assert isinstance(retry, Retry)
    assert (retry.reason, retry.interrupted) == (Reason.GANG_START_TIMEOUT, True)
    job = c.jobs["ns/mnp"]
    assert (job.failures, job.interruptions) == (0, 0)  # neither a failure nor an interruption
    [again] = of_type(ds, Admit)
    assert isinstance(again, Admit)
    assert again.attempt == 2


def test_a_gang_that_started_is_never_released() -> None:
    c = make_cache((make_ce(vcpus=8),), (make_queue(),))
    c.upsert_job(gang_job("mnp", make_gang(timeout=60)), 0)
    cycle(c, 0)
    c.attempt_started("ns/mnp", None, 1, 30)  # the operator saw every node's pod run
    assert of_type(cycle(c, 200), Terminate) == []
    assert c.jobs["ns/mnp"].phase is Phase.RUNNING


def test_a_lost_node_interrupts_the_attempt_and_uses_the_interruption_budget() -> None:
    c = make_cache((make_ce(vcpus=8),), (make_queue(),))
    c.upsert_job(gang_job("mnp", attempts=1), 0)
    cycle(c, 0)
    c.attempt_started("ns/mnp", None, 1, 1)
    c.attempt_finished("ns/mnp", None, 1, 2, exit_code=None, interrupted=True,
                       status_reason="node 2 lost")  # fmt: skip
    ds = cycle(c, 3)
    [retry] = of_type(ds, Retry)
    assert isinstance(retry, Retry)
    assert retry.reason is Reason.INTERRUPTED
    assert c.jobs["ns/mnp"].interruptions == 1
    [again] = of_type(ds, Admit)
    assert isinstance(again, Admit)
    assert again.attempt == 2


def test_the_main_nodes_exit_decides() -> None:
    c = make_cache((make_ce(vcpus=8),), (make_queue(),))
    c.upsert_job(gang_job("mnp", attempts=1), 0)
    cycle(c, 0)
    c.attempt_started("ns/mnp", None, 1, 1)
    c.attempt_finished("ns/mnp", None, 1, 5, exit_code=3)
    [fail] = of_type(cycle(c, 6), Fail)
    assert isinstance(fail, Fail)
    assert fail.reason is Reason.RETRIES_EXHAUSTED
    assert c.allocated("ce") == Resources()


def test_a_gang_that_succeeds_while_being_released_succeeded() -> None:
    c = make_cache((make_ce(vcpus=8),), (make_queue(),))
    c.upsert_job(gang_job("mnp", make_gang(timeout=10)), 0)
    cycle(c, 0)
    assert of_type(cycle(c, 11), Terminate)
    c.attempt_finished("ns/mnp", None, 1, 12, exit_code=0)
    assert of_type(cycle(c, 13), Succeed)


def test_restart_restores_a_starting_gang_with_its_timer_and_capacity() -> None:
    c = make_cache((make_ce(vcpus=8),), (make_queue(),))
    c.restore_job(gang_job("mnp", make_gang(timeout=60)), 100, phase=Phase.STARTING,
                  attempt=1, compute_environment="ce")  # fmt: skip
    c.restore_job(gang_job("run", make_gang(2, timeout=60)), 100, phase=Phase.RUNNING,
                  attempt=1, compute_environment="ce")  # fmt: skip
    assert c.allocated("ce").mcpu == 8000 + 4000
    assert of_type(cycle(c, 150), Terminate) == []
    stops = of_type(cycle(c, 161), Terminate)
    assert [d.job_key for d in stops] == ["ns/mnp"]  # the running gang is not released
