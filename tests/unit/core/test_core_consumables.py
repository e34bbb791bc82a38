"""Consumable resources in the core: jobs take all they need at admission or wait naming the
resource; replenishable units come back, non-replenishable ones are used up; totals change at
once; rollbacks, arrays, restarts and deletions."""

from __future__ import annotations

from dataclasses import replace

from tests.unit.core.core_factories import (
    admitted,
    cycle,
    make_cache,
    make_ce,
    make_job,
    make_queue,
    of_type,
)

from kubatch.core.cache import Cache
from kubatch.core.consumables import shortfall, wait_message
from kubatch.core.decisions import Admit, SetWaiting
from kubatch.core.lifecycle import Phase, Reason
from kubatch.core.model import ConsumableResource, JobSpec
from kubatch.core.model import ResourceType as RT


def needing(name: str, *needs: tuple[str, int], **kw: object) -> JobSpec:
    return replace(make_job(name, **kw), consumables=tuple(needs))  # type: ignore[arg-type]


def licence_cache(total: int = 1, kind: RT = RT.REPLENISHABLE, vcpus: int = 16) -> Cache:
    c = make_cache((make_ce(vcpus=vcpus),), (make_queue(),))
    c.consumables.upsert(ConsumableResource("licence", total, kind))
    return c


def waits(ds: list[object]) -> dict[str, SetWaiting]:
    return {d.job_key: d for d in ds if isinstance(d, SetWaiting)}


def test_two_jobs_share_a_licence_one_after_the_other() -> None:
    c = licence_cache(1)
    c.upsert_job(needing("a", ("licence", 1)), 0)
    c.upsert_job(needing("b", ("licence", 1)), 0)
    ds = cycle(c, 1)
    assert admitted(ds) == ["ns/a"]
    w = waits(ds)["ns/b"]
    assert (w.phase, w.reason) == (Phase.RUNNABLE, Reason.CONSUMABLE_UNAVAILABLE)
    assert w.message == "waiting for consumable resource licence: needs 1, 0 of 1 available"
    assert c.consumables.usage("licence") == (1, 0)
    assert admitted(cycle(c, 2)) == []
    c.attempt_finished("ns/a", None, 1, 3, exit_code=0)
    assert c.consumables.usage("licence") == (0, 1)  # REPLENISHABLE: back when it ends
    assert admitted(cycle(c, 4)) == ["ns/b"]


def test_all_or_nothing_over_several_resources() -> None:
    c = licence_cache(2)
    c.consumables.upsert(ConsumableResource("db", 1))
    c.upsert_job(needing("holder", ("db", 1)), 0)
    cycle(c, 0)
    c.upsert_job(needing("both", ("licence", 2), ("db", 1)), 1)
    ds = cycle(c, 1)
    assert admitted(ds) == []
    assert "consumable resource db" in waits(ds)["ns/both"].message
    assert c.consumables.usage("licence") == (0, 2)  # nothing was taken from licence


def test_a_resource_that_does_not_exist_yet_is_waited_for() -> None:
    c = make_cache((make_ce(vcpus=4),), (make_queue(),))
    c.upsert_job(needing("a", ("slots", 1)), 0)
    ds = cycle(c, 1)
    assert waits(ds)["ns/a"].message.endswith("slots: it does not exist (yet)")
    c.consumables.upsert(ConsumableResource("slots", 1))
    assert admitted(cycle(c, 2)) == ["ns/a"]


def test_non_replenishable_units_are_used_up() -> None:
    c = licence_cache(2, RT.NON_REPLENISHABLE)
    for n in ("a", "b", "c"):
        c.upsert_job(needing(n, ("licence", 1)), 0)
    assert admitted(cycle(c, 1)) == ["ns/a", "ns/b"]
    c.attempt_finished("ns/a", None, 1, 2, exit_code=0)
    c.attempt_finished("ns/b", None, 1, 2, exit_code=0)
    assert c.consumables.usage("licence") == (2, 0)  # nothing comes back
    assert admitted(cycle(c, 3)) == []


def test_a_rolled_back_admission_gives_every_unit_back() -> None:
    for kind in RT:
        c = licence_cache(1, kind)
        c.upsert_job(needing("a", ("licence", 1)), 0)
        [adm] = of_type(cycle(c, 1), Admit)
        assert isinstance(adm, Admit)
        c.forget(adm, 1)  # the Kubernetes Job could not be created
        assert c.consumables.usage("licence") == (0, 1), kind
        assert admitted(cycle(c, 2)) == ["ns/a"]


def test_total_changes_apply_at_once() -> None:
    c = licence_cache(1)
    for n in ("a", "b", "c"):
        c.upsert_job(needing(n, ("licence", 1)), 0)
    assert admitted(cycle(c, 1)) == ["ns/a"]
    c.consumables.upsert(ConsumableResource("licence", 3))
    assert admitted(cycle(c, 2)) == ["ns/b", "ns/c"]
    c.consumables.upsert(ConsumableResource("licence", 1))  # below what is in use
    assert c.consumables.usage("licence") == (3, 0)  # nothing is taken back
    c.upsert_job(needing("d", ("licence", 1)), 3)
    c.attempt_finished("ns/a", None, 1, 4, exit_code=0)
    assert admitted(cycle(c, 4)) == []  # 2 in use of 1
    c.attempt_finished("ns/b", None, 1, 5, exit_code=0)
    c.attempt_finished("ns/c", None, 1, 5, exit_code=0)
    assert admitted(cycle(c, 6)) == ["ns/d"]


def test_a_large_request_is_not_starved_by_later_small_ones() -> None:
    c = licence_cache(2)
    c.upsert_job(needing("small1", ("licence", 1)), 0)
    cycle(c, 0)
    c.upsert_job(needing("big", ("licence", 2)), 1)
    c.upsert_job(needing("small2", ("licence", 1)), 2)
    ds = cycle(c, 3)
    assert admitted(ds) == []  # the free unit is kept for "big", the job before small2
    assert waits(ds)["ns/small2"].reason is Reason.CONSUMABLE_UNAVAILABLE
    c.attempt_finished("ns/small1", None, 1, 4, exit_code=0)
    assert admitted(cycle(c, 5)) == ["ns/big"]


def test_array_children_each_take_their_units() -> None:
    c = licence_cache(2)
    c.upsert_job(needing("arr", ("licence", 1), array=5), 0)
    ds = cycle(c, 1)
    assert admitted(ds) == ["ns/arr:0", "ns/arr:1"]
    c.attempt_finished("ns/arr", 0, 1, 2, exit_code=0)
    assert admitted(cycle(c, 3)) == ["ns/arr:2"]
    assert c.consumables.usage("licence") == (2, 0)


def test_a_deleted_job_gives_its_units_back() -> None:
    c = licence_cache(1)
    c.upsert_job(needing("a", ("licence", 1)), 0)
    cycle(c, 0)
    c.remove_job("ns/a")
    assert c.consumables.usage("licence") == (0, 1)


def test_restart_counts_held_and_used_up_units_again() -> None:
    c = make_cache((make_ce(vcpus=8),), (make_queue(),))
    # the resources as read back: the used-up count from a NON_REPLENISHABLE's status
    c.consumables.upsert(ConsumableResource("licence", 2))
    c.consumables.upsert(ConsumableResource("tokens", 5, RT.NON_REPLENISHABLE, consumed=3))
    c.restore_job(needing("run", ("licence", 1), ("tokens", 1)), 0, phase=Phase.RUNNING,
                  attempt=1, compute_environment="ce")  # fmt: skip
    c.restore_job(needing("done", ("licence", 1)), 0, phase=Phase.SUCCEEDED, attempt=1)
    assert c.consumables.usage("licence") == (1, 1)  # the running job holds one again
    assert c.consumables.usage("tokens") == (3, 2)  # already in the status' count


def test_a_deleted_resource_keeps_its_held_units_and_its_jobs_wait() -> None:
    c = licence_cache(1)
    c.upsert_job(needing("a", ("licence", 1)), 0)
    cycle(c, 0)
    c.consumables.remove("licence")
    c.upsert_job(needing("b", ("licence", 1)), 1)
    ds = cycle(c, 1)
    assert "does not exist" in waits(ds)["ns/b"].message
    c.consumables.upsert(ConsumableResource("licence", 1))  # back: "a" still holds one
    assert admitted(cycle(c, 2)) == []
    c.attempt_finished("ns/a", None, 1, 3, exit_code=0)
    assert admitted(cycle(c, 4)) == ["ns/b"]


def test_pure_helpers() -> None:
    assert shortfall((("a", 1), ("b", 2)), {"a": 1, "b": 2}) is None
    assert shortfall((("a", 1), ("b", 2)), {"a": 1, "b": 1}) == ("b", 2, 1)
    assert shortfall((("x", 1),), {}) == ("x", 1, None)
    assert wait_message(("b", 2, 1), 4) == (
        "waiting for consumable resource b: needs 2, 1 of 4 available"
    )
