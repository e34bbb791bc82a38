"""Managed scaling plans, catalogue and reclaim choices (pure)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubatch.api.enums import AllocationStrategy, CapacityType
from kubatch.core.catalogue import BUILTIN, Catalogue, parse_catalogue
from kubatch.sim.nodes import NodeSpec
from kubatch.sim.pods import Requests
from kubatch.sim.scaling import (
    CyclePlan,
    Pool,
    PoolNode,
    choose_fraction,
    choose_random_reclaims,
    eligible_types,
    parse_pool,
    plan_cycle,
    plan_scaling,
    reclaim_probability,
    target_vcpus,
)
from kubatch.sim.state import NodeRecord

CAT = Catalogue(BUILTIN)


def make_ce(**cr: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubatch.io/v1alpha1",
        "kind": "ComputeEnvironment",
        "metadata": {"name": "spot"},
        "spec": {"type": "Managed", "computeResources": cr},
    }


def make_pool(**kw: Any) -> Pool:
    defaults: dict[str, Any] = {"name": "ce", "managed": True, "max_vcpus": 64}
    return Pool(**{**defaults, **kw})


def plan(pool: Pool, nodes: list[PoolNode], pending: list[Requests], now: float = 100.0) -> Any:
    return plan_scaling(
        pool, nodes=nodes, pending=pending, catalogue=CAT, now=now, scale_down_delay=30.0
    )


def test_parse_pool_reads_the_ce() -> None:
    ce = make_ce(
        capacityType="Spot",
        minvCpus=4,
        maxvCpus=32,
        instanceTypes=["m5", "c5.xlarge"],
        allocationStrategy="SpotCapacityOptimized",
        bidPercentage=40,
    )
    ce["status"] = {"desiredvCpus": 8}
    ce["spec"]["nodeSelector"] = {"pool": "spot"}
    p = parse_pool(ce)
    assert p == Pool(
        name="spot",
        managed=True,
        enabled=True,
        spot=True,
        min_vcpus=4,
        max_vcpus=32,
        desired_vcpus=8,
        instance_types=("m5", "c5.xlarge"),
        strategy=AllocationStrategy.SPOT_CAPACITY_OPTIMIZED,
        bid_percentage=40,
        node_labels={"pool": "spot"},
    )


def test_parse_pool_defaults() -> None:
    p = parse_pool({"metadata": {"name": "x"}, "spec": {"type": "Unmanaged"}})
    assert (p.managed, p.spot, p.min_vcpus, p.max_vcpus, p.desired_vcpus) == (
        False,
        False,
        0,
        0,
        None,
    )
    assert p.strategy is AllocationStrategy.BEST_FIT


def test_select_instance_types() -> None:
    assert {t.name for t in CAT.select(["m5.large", "c5"])} == {
        "m5.large",
        "c5.large",
        "c5.xlarge",
        "c5.2xlarge",
        "c5.4xlarge",
    }
    assert all(t.gpus == 0 for t in CAT.select([]))
    assert {t.family for t in CAT.select(["optimal"])} == {"m5", "c5", "r5"}
    assert [t.name for t in CAT.select(["p3"])] == ["p3.2xlarge"]


def test_bid_percentage_excludes_expensive_spot() -> None:
    # m5.large spot/od = 0.035/0.096 = 36%; r5.large = 0.040/0.126 = 32%
    pool = make_pool(spot=True, bid_percentage=33, instance_types=("m5.large", "r5.large"))
    assert [t.name for t in eligible_types(pool, CAT)] == ["r5.large"]
    # on-demand pools ignore bidPercentage
    assert len(eligible_types(make_pool(bid_percentage=1, instance_types=("m5",)), CAT)) == 4


def test_catalogue_file_overrides_and_extends() -> None:
    cat = parse_catalogue(
        {
            "instanceTypes": [
                {"name": "m5.large", "spotPrice": 0.09},
                {"name": "x1.tiny", "vcpus": 1, "memoryGiB": 2, "onDemandPrice": 0.01},
            ]
        }
    )
    assert cat["m5.large"].spot_price == 0.09
    assert cat["m5.large"].vcpus == 2
    assert cat["x1.tiny"].memory_mib == 2048
    assert len(cat) == len(BUILTIN) + 1
    only = parse_catalogue(
        {
            "replace": True,
            "instanceTypes": [{"name": "a.b", "vcpus": 1, "memoryMiB": 512, "onDemandPrice": 1}],
        }
    )
    assert [t.name for t in only] == ["a.b"]
    with pytest.raises(ValueError, match="needs"):
        parse_catalogue([{"name": "new.one"}])


def test_target_prefers_published_desired() -> None:
    pool = make_pool(desired_vcpus=10, min_vcpus=2, max_vcpus=8)
    assert target_vcpus(pool, [], [Requests(100, 1, 0)]) == 8
    pool = make_pool(min_vcpus=2)
    assert target_vcpus(pool, [], []) == 2
    busy = [PoolNode("a", "m5.large", 2, busy=True)]
    assert target_vcpus(pool, busy, [Requests(1.5, 1, 0), Requests(2, 1, 0)]) == 6


def test_scale_up_from_pending_pods_best_fit() -> None:
    pool = make_pool(instance_types=("m5",), max_vcpus=64)
    p = plan(pool, [], [Requests(3, 1024, 0)] * 3)  # 9 vCPUs, each pod needs a 4-vCPU node
    assert p.add == ("m5.xlarge",) * 3
    assert p.remove == ()


def test_best_fit_progressive_uses_sizes_that_fill_the_gap() -> None:
    pool = make_pool(
        instance_types=("m5",), strategy=AllocationStrategy.BEST_FIT_PROGRESSIVE, max_vcpus=64
    )
    p = plan(pool, [], [Requests(1, 1024, 0)] * 10)
    assert sum(CAT[t].vcpus for t in p.add) == 10
    assert "m5.2xlarge" in p.add


def test_spot_capacity_optimized_prefers_deep_pools() -> None:
    pool = make_pool(
        spot=True, strategy=AllocationStrategy.SPOT_CAPACITY_OPTIMIZED, desired_vcpus=4
    )
    p = plan(pool, [], [])
    assert all(CAT[t].spot_capacity == max(x.spot_capacity for x in CAT) for t in p.add)


def test_gpu_pods_get_gpu_types() -> None:
    pool = make_pool(instance_types=("m5", "p3"), max_vcpus=64)
    p = plan(pool, [], [Requests(4, 1024, 1)])
    assert p.add == ("p3.2xlarge",)


def test_scale_down_after_delay_keeps_min() -> None:
    pool = make_pool(min_vcpus=4, instance_types=("m5",))
    nodes = [PoolNode(f"n{i}", "m5.large", 2, idle_since=50.0) for i in range(4)]
    assert plan(pool, nodes, [], now=60.0).remove == ()  # not idle long enough
    p = plan(pool, nodes, [], now=100.0)
    assert len(p.remove) == 2  # 8 → 4 = minvCpus
    busy = [PoolNode("b", "m5.xlarge", 4, busy=True)]
    assert plan(pool, busy, [], now=1000.0).remove == ()


def test_unmanaged_pools_are_left_alone() -> None:
    pool = make_pool(managed=False, min_vcpus=8)
    assert plan(pool, [], [Requests(2, 1, 0)]).add == ()


def test_over_max_idle_nodes_go_at_once() -> None:
    pool = make_pool(max_vcpus=0)  # e.g. the CE was deleted
    nodes = [PoolNode("a", "m5.large", 2, idle_since=99.0), PoolNode("b", "m5.large", 2, busy=True)]
    assert plan(pool, nodes, [], now=100.0).remove == ("a",)


@settings(max_examples=200, deadline=None)
@given(
    min_v=st.integers(0, 64),
    extra=st.integers(0, 128),
    desired=st.none() | st.integers(0, 300),
    spot=st.booleans(),
    bid=st.integers(0, 100),
    strategy=st.sampled_from(list(AllocationStrategy)),
    existing=st.lists(
        st.tuples(st.sampled_from(["m5.large", "c5.xlarge", "r5.2xlarge"]), st.booleans()),
        max_size=12,
    ),
    pending=st.lists(st.tuples(st.floats(0.1, 20), st.integers(0, 2)), max_size=20),
    age=st.floats(0, 100),
)
def test_scaling_invariants(
    *,
    min_v: int,
    extra: int,
    desired: int | None,
    spot: bool,
    bid: int,
    strategy: AllocationStrategy,
    existing: list[tuple[str, bool]],
    pending: list[tuple[float, int]],
    age: float,
) -> None:
    pool = make_pool(
        min_vcpus=min_v,
        max_vcpus=min_v + extra,
        desired_vcpus=desired,
        spot=spot,
        bid_percentage=bid,
        strategy=strategy,
        instance_types=("m5", "c5", "r5", "p3"),
    )
    nodes = [
        PoolNode(f"n{i}", t, CAT[t].vcpus, busy=b, idle_since=None if b else 100.0 - age)
        for i, (t, b) in enumerate(existing)
    ]
    reqs = [Requests(v, 1024, g) for v, g in pending]
    before = sum(n.vcpus for n in nodes)
    p = plan(pool, nodes, reqs)
    added = sum(CAT[t].vcpus for t in p.add)
    removed = sum(n.vcpus for n in nodes if n.name in p.remove)
    after = before + added - removed
    if p.add:
        # growth crosses maxvCpus by at most its last instance (SEMANTICS §1, as AWS; this
        # invariant used to forbid any crossing, which AWS allows)
        assert after - CAT[p.add[-1]].vcpus < pool.max_vcpus
    if p.remove:
        assert all(not n.busy for n in nodes if n.name in p.remove)
        assert after >= min(before, max(pool.min_vcpus, p.target_vcpus)) or before > pool.max_vcpus
    for t in p.add:
        it = CAT[t]
        if spot:
            assert it.spot_price <= it.on_demand_price * bid / 100  # bidPercentage respected


def test_choose_fraction() -> None:
    rng = random.Random(1)
    nodes = [f"n{i}" for i in range(10)]
    assert len(choose_fraction(nodes, 0.25, rng)) == 3
    assert choose_fraction(nodes, 0, rng) == []
    assert choose_fraction(nodes, 1.0, rng) == nodes
    assert choose_fraction([], 0.5, rng) == []


def test_random_reclaims_follow_rate() -> None:
    assert reclaim_probability(0, 1) == 0
    assert reclaim_probability(3600, 1) == pytest.approx(1 - 2.718281828**-1)
    rng = random.Random(7)
    nodes = [f"n{i}" for i in range(1000)]
    hits = sum(len(choose_random_reclaims(nodes, 36, 1.0, rng)) for _ in range(100))
    assert 700 < hits < 1300  # expectation 1000 = 1000 nodes x 0.01/s x 100 s


def record(name: str, ce: str, *, busy: bool = False, managed: bool = True, **kw: Any) -> Any:
    spec = NodeSpec(name, ce, "m5.xlarge", CapacityType.ON_DEMAND, 4, 0.2, 0.0, managed)
    return NodeRecord(spec=spec, pods={"ns/p"} if busy else set(), **kw)


def cycle(
    nodes: list[NodeRecord],
    pools: dict[str, Pool],
    *,
    pending: list[tuple[str, Requests]] | None = None,
    pools_known: bool = True,
) -> CyclePlan:
    return plan_cycle(
        nodes,
        pending or [],
        pools,
        {},
        pools_known=pools_known,
        catalogue=CAT,
        now=100.0,
        scale_down_delay=30.0,
        drain_grace=1.0,
    )


def test_cycle_deletes_drained_cordoned_nodes_only_after_the_grace() -> None:
    nodes = [
        record("drained", "a", cordoned_at=98.0),
        record("just-cordoned", "a", cordoned_at=99.5),
        record("still-busy", "a", busy=True, cordoned_at=50.0),
        record("reclaimed", "a", cordoned_at=50.0, reclaimed=True),
    ]
    plan = cycle(nodes, {"a": Pool("a", managed=True, max_vcpus=64)})
    assert plan.delete == ("drained",)


def test_cycle_drains_the_nodes_of_a_deleted_compute_environment() -> None:
    nodes = [record("n1", "gone", idle_since=0.0), record("u1", "unmanaged", managed=False)]
    plan = cycle(nodes, {})
    assert plan.cordon == ("n1",)  # a pool of size 0; unmanaged nodes are never touched
    assert cycle(nodes, {}, pools_known=False).cordon == ()  # not before the CEs are listed


def test_cycle_launches_for_pending_pods() -> None:
    pool = Pool("a", managed=True, max_vcpus=16, instance_types=("m5.xlarge",))
    plan = cycle([], {"a": pool}, pending=[("a", Requests(3.0, 1024.0))])
    assert plan.launch == ((pool, "m5.xlarge"),)


def test_one_instance_may_take_the_pool_past_max_vcpus() -> None:
    """SEMANTICS §1 (as AWS): when the smallest allowed type is larger than the room left, the
    pool may exceed maxvCpus by one instance (admission still stops at maxvCpus)."""
    pool = make_pool(max_vcpus=8, instance_types=("m5.4xlarge",))
    p = plan(pool, [], [Requests(1.0, 1024.0, 0)] * 8)
    assert p.add == ("m5.4xlarge",)
    full = [PoolNode("n1", "m5.4xlarge", 16, busy=True)]
    assert plan(pool, full, [Requests(1.0, 1024.0, 0)] * 8).add == ()
