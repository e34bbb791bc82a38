"""render.job: an admitted attempt becomes exactly one well-formed batch/v1 Job."""

from __future__ import annotations

from typing import Any

import pytest

from kubatch.api import labels as L
from kubatch.render.job import AttemptRef, Placement, build_job

TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"app": "align"}, "annotations": {"sim.kubatch.io/duration": "2"}},
    "spec": {
        "containers": [
            {
                "name": "main",
                "image": "busybox",
                "command": ["align", "--sample", "s1"],
                "env": [{"name": "KEEP", "value": "1"}, {"name": "AWS_BATCH_JOB_ID", "value": "x"}],
                "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
            }
        ]
    },
}
SPOT = Placement(
    compute_environment="spot-ce",
    capacity_type="Spot",
    node_selector={"kubatch.io/compute-environment": "spot-ce"},
    tolerations=[{"key": "kubatch.io/capacity-type", "value": "spot", "effect": "NoSchedule"}],
)


def ref(**kw: Any) -> AttemptRef:
    base: dict[str, Any] = {
        "namespace": "ns",
        "name": "align",
        "uid": "u-1",
        "queue": "high",
        "attempt": 2,
    }
    return AttemptRef(**{**base, **kw})


def env_of(job: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_job_shape() -> None:
    job = build_job(
        name="align-abc-2", ref=ref(), placement=SPOT, pod_template=TEMPLATE, timeout_seconds=600
    )
    assert job["apiVersion"] == "batch/v1"
    assert job["metadata"]["name"] == "align-abc-2"
    assert job["metadata"]["namespace"] == "ns"
    assert job["spec"]["backoffLimit"] == 0
    # the attempt timeout counts from the attempt's start: no Job-level deadline (it would
    # count the wait for a node); the pod's own deadline is a backstop with a grace
    assert "activeDeadlineSeconds" not in job["spec"]
    assert job["spec"]["template"]["spec"]["activeDeadlineSeconds"] == 600 + 60
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "BatchJob",
        "align",
        "u-1",
        True,
    )
    pod = job["spec"]["template"]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["nodeSelector"] == {"kubatch.io/compute-environment": "spot-ce"}
    assert pod["spec"]["tolerations"] == [dict(SPOT.tolerations[0])]
    assert pod["metadata"]["labels"]["app"] == "align"
    assert pod["metadata"]["annotations"] == {"sim.kubatch.io/duration": "2"}
    for lbls in (job["metadata"]["labels"], pod["metadata"]["labels"]):
        assert lbls[L.BATCHJOB] == "align"
        assert lbls[L.QUEUE] == "high"
        assert lbls[L.COMPUTE_ENVIRONMENT] == "spot-ce"
        assert lbls[L.CAPACITY_TYPE] == "spot"
        assert lbls[L.ATTEMPT] == "2"


def test_template_is_not_modified() -> None:
    before = repr(TEMPLATE)
    build_job(name="n", ref=ref(), placement=SPOT, pod_template=TEMPLATE)
    assert repr(TEMPLATE) == before


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        pytest.param(
            None, {"AWS_BATCH_JOB_ID": "ns/align", "KUBATCH_JOB_ATTEMPT": "2"}, id="plain"
        ),
        pytest.param(
            7,
            {
                "AWS_BATCH_JOB_ARRAY_INDEX": "7",
                "KUBATCH_JOB_ARRAY_INDEX": "7",
                "AWS_BATCH_JOB_ID": "ns/align:7",
            },
            id="array-child",
        ),
    ],
)
def test_injected_environment(index: int | None, expected: dict[str, str]) -> None:
    job = build_job(
        name="n", ref=ref(index=index, array_size=10), placement=SPOT, pod_template=TEMPLATE
    )
    env = env_of(job)
    for k, v in expected.items():
        assert env[k] == v
    assert env["KEEP"] == "1"
    assert env["AWS_BATCH_JQ_NAME"] == "high"
    assert env["AWS_BATCH_CE_NAME"] == env["KUBATCH_CE_NAME"] == "spot-ce"
    assert ("AWS_BATCH_JOB_ARRAY_INDEX" in env) == (index is not None)
    names = [e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert len(names) == len(set(names)), "a user value must not duplicate an injected name"


def test_no_timeout_means_no_deadline_and_no_selector_when_unset() -> None:
    job = build_job(
        name="n", ref=ref(), placement=Placement("ce", "OnDemand"), pod_template=TEMPLATE
    )
    assert "activeDeadlineSeconds" not in job["spec"]
    assert "activeDeadlineSeconds" not in job["spec"]["template"]["spec"]
    assert "nodeSelector" not in job["spec"]["template"]["spec"]
    assert job["metadata"]["labels"][L.CAPACITY_TYPE] == "on-demand"
