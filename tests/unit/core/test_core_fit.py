"""One answer to "can this job ever run here": every resource, per node shape."""

from __future__ import annotations

import pytest
from tests.unit.core.core_factories import GI, admitted, cycle, make_cache, make_job, make_queue

from kubatch.core.catalogue import DEFAULT, CatalogueError, parse_catalogue
from kubatch.core.decisions import Fail, SetWaiting
from kubatch.core.fit import Fit, ce_fit, managed_shapes, pareto, queue_fit, shortfall
from kubatch.core.lifecycle import Phase, Reason
from kubatch.core.model import ComputeEnvironment, Shape
from kubatch.core.resources import Resources, sum_requests


def managed(name: str, vcpus: int, types: list[str]) -> ComputeEnvironment:
    return ComputeEnvironment(name, vcpus, shapes=managed_shapes(DEFAULT, types))


def unmanaged(name: str, *nodes: Resources) -> ComputeEnvironment:
    total = Resources()
    for n in nodes:
        total = total + n
    shapes = pareto(Shape(f"node{i}", n) for i, n in enumerate(nodes))
    return ComputeEnvironment(name, 1 << 40, node_capacity=total, shapes=shapes, managed=False)


def test_gpu_job_fits_the_gpu_ce_not_the_bigger_cpu_one() -> None:
    """Regression (#10): a 64-vCPU CE without GPUs and an 8-vCPU CE with GPUs; a 1-GPU job
    was failed NoComputeEnvironmentCanFit at submission although the second CE could run it."""
    cpu = managed("cpu", 64, ["m5.4xlarge"])
    gpu = managed("gpu", 8, ["p3.2xlarge"])
    job = Resources(4000, 8 * GI, 1)
    verdict = queue_fit(job, [("cpu", cpu), ("gpu", gpu)])
    assert verdict.fit is Fit.YES
    assert [v.fit for v in verdict.per_ce] == [Fit.NO, Fit.YES]
    assert verdict.per_ce[1].shape is not None
    assert verdict.per_ce[1].shape.name == "p3.2xlarge"
    c = make_cache((cpu, gpu), (make_queue(ces=("cpu", "gpu")),))
    c.upsert_job(make_job("g", vcpus=4, mem_gi=8, gpu=1), 0)
    ds = cycle(c)
    assert admitted(ds) == ["ns/g"]
    assert c.jobs["ns/g"].ce == "gpu"


@pytest.mark.parametrize(
    ("size", "fit", "words"),
    [
        (Resources(2000, 4 * GI), Fit.YES, ""),
        (Resources(32000, 4 * GI), Fit.NO, "needs 32 vCPU > maxvCpus 16"),
        (Resources(4000, 4 * GI), Fit.NO, "4 vCPU > 2"),
        (Resources(1000, 600 * GI), Fit.NO, "600Gi memory > 8Gi"),
        (Resources(1000, GI, 1), Fit.NO, "1 GPU > 0"),
        (Resources(1000, GI, 0, (("example.com/fpga", 1),)), Fit.NO, "1 example.com/fpga > 0"),
        (Resources(1000, GI, 0, (("ephemeral-storage", 10 * GI),)), Fit.YES, ""),
    ],
    ids=["fits", "over-max-vcpus", "cpu", "memory", "gpu", "extended", "implicit-disk"],
)
def test_managed_ce_limited_to_m5_large(size: Resources, fit: Fit, words: str) -> None:
    """Issue #11: a Managed CE limited to m5.large admitted a 32-vCPU or 600 GiB job whose
    pod could never schedule."""
    verdict = ce_fit(size, managed("small", 16, ["m5.large"]))
    assert verdict.fit is fit
    assert words in verdict.why


def test_unmanaged_fit_is_per_node_not_the_pool_sum() -> None:
    ce = unmanaged("u", Resources(4000, 16 * GI), Resources(4000, 16 * GI))
    assert ce_fit(Resources(4000, 8 * GI), ce).fit is Fit.YES
    no = ce_fit(Resources(6000, 8 * GI), ce)
    assert no.fit is Fit.NO
    assert "no node holds it" in no.why


def test_unmanaged_without_nodes_waits_instead_of_failing() -> None:
    ce = unmanaged("u")
    assert ce_fit(Resources(1000, GI), ce).fit is Fit.UNKNOWN
    c = make_cache((ce,), (make_queue(ces=("u",)),))
    c.upsert_job(make_job("a"), 0)
    ds = cycle(c)
    assert not [d for d in ds if isinstance(d, Fail)]
    [w] = [d for d in ds if isinstance(d, SetWaiting)]
    assert (w.phase, w.reason) == (Phase.RUNNABLE, Reason.INSUFFICIENT_CAPACITY)
    c.upsert_compute_environment(unmanaged("u", Resources(2000, 4 * GI)))
    assert admitted(cycle(c, 1)) == ["ns/a"]


def test_unknown_ce_or_instance_type_cannot_fail_a_job() -> None:
    assert ce_fit(Resources(1000, GI), None, "later").fit is Fit.UNKNOWN
    assert managed_shapes(DEFAULT, ["m7i.large"]) is None  # not in the catalogue
    ce = managed("new", 8, ["m7i.large"])
    assert ce_fit(Resources(8000, 30 * GI), ce).fit is Fit.YES  # only maxvCpus is judged


def test_fail_fast_only_when_every_ce_says_no() -> None:
    ces = [("a", managed("a", 4, ["m5.large"])), ("b", managed("b", 4, ["c5.large"]))]
    verdict = queue_fit(Resources(1000, 12 * GI), ces)
    assert verdict.fit is Fit.NO
    assert "a: no instance type holds it" in verdict.message
    assert "largest m5.large: 2 vCPU, 8Gi memory, 0 GPU" in verdict.message
    assert queue_fit(Resources(1000, 12 * GI), [*ces, ("c", None)]).fit is Fit.UNKNOWN


def test_extended_resources_bound_admission_on_unmanaged_pools() -> None:
    fpga = (("example.com/fpga", 1),)
    ce = unmanaged("u", Resources(8000, 32 * GI, 0, fpga))
    c = make_cache((ce,), (make_queue(ces=("u",)),))
    for n in ("a", "b"):
        c.upsert_job(make_job(n), 0)
    spec = make_job("f1")
    c.upsert_job(spec.__class__(**{**_fields(spec), "size": Resources(1000, GI, 0, fpga)}), 0)
    spec2 = make_job("f2")
    c.upsert_job(spec2.__class__(**{**_fields(spec2), "size": Resources(1000, GI, 0, fpga)}), 0)
    assert admitted(cycle(c)) == ["ns/a", "ns/b", "ns/f1"]  # one FPGA in the pool


def _fields(spec: object) -> dict[str, object]:
    return {f: getattr(spec, f) for f in spec.__slots__}  # type: ignore[attr-defined]


def test_requests_parse_every_resource() -> None:
    size = sum_requests(
        [
            {"resources": {"requests": {"cpu": "500m", "memory": "1Gi", "example.com/x": "2"}}},
            {"resources": {"limits": {"nvidia.com/gpu": 1, "example.com/x": 1}}},
        ]
    )
    assert size == Resources(500, GI, 1, (("example.com/x", 3),))
    assert shortfall(size, Resources(500, GI, 1)) == ["3 example.com/x > 0"]


def test_pareto_keeps_only_undominated_shapes() -> None:
    shapes = [Shape(t.name, t.resources) for t in DEFAULT]
    kept = {s.name for s in pareto(shapes)}
    assert "m5.large" not in kept  # m5.xlarge holds everything m5.large does
    assert {"r5.4xlarge", "p3.2xlarge"} <= kept


def test_user_catalogue_extends_and_overrides() -> None:
    cat = parse_catalogue(
        {
            "instanceTypes": [
                {"name": "m5.large", "spotPrice": 0.01},
                {"name": "f1.2xlarge", "vcpus": 8, "memoryGiB": 122, "onDemandPrice": 1.65,
                 "extendedResources": {"example.com/fpga": 1}},
            ]
        }
    )  # fmt: skip
    assert cat["m5.large"].spot_price == 0.01
    assert cat["m5.large"].vcpus == 2  # other fields kept
    assert cat["f1.2xlarge"].resources.amount("example.com/fpga") == 1
    with pytest.raises(CatalogueError, match="x1: needs vcpus"):
        parse_catalogue([{"name": "x1"}])
    with pytest.raises(CatalogueError, match="bad"):
        parse_catalogue([{"name": "m5.large", "vcpus": "bad"}])
