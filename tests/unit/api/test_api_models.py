"""Models of the four kinds: defaults, camelCase wire format, round trips, parse errors."""

from __future__ import annotations

from typing import Any

import pytest
from tests.manifests.corpus import example_documents

from kubatch.api.models import (
    API_VERSION,
    BatchJobStatus,
    CapacityType,
    DependencyCondition,
    InvalidResource,
    QueueOrdering,
    RetryAction,
    State,
    dump,
    parse,
    parse_batch_job,
    parse_compute_environment,
    parse_job_definition,
    parse_job_queue,
)
from kubatch.core.lifecycle import Phase


def make_job(**spec: Any) -> dict[str, Any]:
    body = {"jobQueue": "q", "jobDefinition": "d", **spec}
    return {"apiVersion": API_VERSION, "kind": "BatchJob", "metadata": {"name": "j"}, "spec": body}


def make_definition(**spec: Any) -> dict[str, Any]:
    container = {
        "name": "main",
        "image": "busybox",
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
    }
    body = {"template": {"spec": {"containers": [container]}}, **spec}
    meta = {"name": "d"}
    return {"apiVersion": API_VERSION, "kind": "JobDefinition", "metadata": meta, "spec": body}


def test_compute_environment_defaults() -> None:
    ce = parse_compute_environment(
        {"kind": "ComputeEnvironment", "spec": {"computeResources": {"maxvCpus": 4}}}
    )
    assert ce.spec.type.value == "Managed"
    assert ce.spec.state is State.ENABLED
    cr = ce.spec.compute_resources
    assert cr is not None
    assert (cr.min_vcpus, cr.max_vcpus, cr.desired_vcpus) == (0, 4, None)
    assert cr.capacity_type is CapacityType.ON_DEMAND
    assert cr.allocation_strategy.value == "BestFit"
    assert cr.instance_types == []
    assert ce.spec.capacity_type is CapacityType.ON_DEMAND


def test_job_queue_defaults_and_order() -> None:
    jq = parse_job_queue(
        {
            "kind": "JobQueue",
            "spec": {
                "computeEnvironmentOrder": [
                    {"order": 2, "computeEnvironment": "b"},
                    {"order": 1, "computeEnvironment": "a"},
                ]
            },
        }
    )
    assert jq.spec.priority == 1
    assert jq.spec.state is State.ENABLED
    assert jq.spec.ordering is QueueOrdering.FIFO
    assert not jq.spec.fair_share
    assert jq.spec.ordered_compute_environments() == ["a", "b"]


def test_batch_job_defaults() -> None:
    job = parse_batch_job(make_job(dependsOn=[{"jobName": "a"}], retryStrategy={}))
    assert job.spec.depends_on[0].condition is DependencyCondition.SUCCEEDED
    assert job.spec.retry_strategy is not None
    assert job.spec.retry_strategy.attempts == 1
    assert not job.spec.is_array
    assert job.status.phase is None
    assert job.spec.parameters == {}


@pytest.mark.parametrize(
    ("action", "expected"),
    [("Retry", RetryAction.RETRY), ("retry", RetryAction.RETRY), ("EXIT", RetryAction.EXIT)],
    ids=["Retry", "retry", "EXIT"],
)
def test_retry_action_is_case_insensitive(action: str, expected: RetryAction) -> None:
    job = parse_batch_job(
        make_job(retryStrategy={"evaluateOnExit": [{"onExitCode": "1", "action": action}]})
    )
    assert job.spec.retry_strategy is not None
    assert job.spec.retry_strategy.evaluate_on_exit[0].retry_action is expected


def test_wire_format_is_camel_case() -> None:
    ce = parse_compute_environment(
        {"kind": "ComputeEnvironment", "spec": {"computeResources": {"maxvCpus": 4}}}
    )
    out = dump(ce)
    assert out["spec"]["computeResources"]["maxvCpus"] == 4
    assert out["spec"]["computeResources"]["minvCpus"] == 0
    assert out["apiVersion"] == "kubatch.io/v1alpha1"
    assert "max_vcpus" not in str(out)


def _is_subset(small: Any, big: Any) -> bool:
    if isinstance(small, dict):
        return isinstance(big, dict) and all(
            k in big and _is_subset(v, big[k]) for k, v in small.items()
        )
    if isinstance(small, list):
        return (
            isinstance(big, list)
            and len(small) == len(big)
            and all(_is_subset(a, b) for a, b in zip(small, big, strict=True))
        )
    return bool(small == big)


@pytest.mark.parametrize(
    "doc", example_documents(), ids=lambda d: f"{d['kind']}-{d['metadata']['name']}"
)
def test_examples_round_trip(doc: dict[str, Any]) -> None:
    model = parse(doc)
    out = dump(model)
    # everything the user wrote survives (including pod-template fields kubatch does not model)
    assert _is_subset(doc["spec"], out["spec"]), out["spec"]
    assert parse(out) == model


def test_pod_template_keeps_unmodelled_fields() -> None:
    body = make_definition()
    body["spec"]["template"]["spec"]["volumes"] = [{"name": "v", "emptyDir": {}}]
    body["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "v", "mountPath": "/v"}
    ]
    out = dump(parse_job_definition(body))
    assert out["spec"]["template"]["spec"]["volumes"] == [{"name": "v", "emptyDir": {}}]
    assert out["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] == "/v"


def test_status_round_trip_and_attempt_count() -> None:
    status = BatchJobStatus.model_validate(
        {
            "phase": "Running",
            "reason": "Running",
            "attempts": [
                {"number": 1, "exitCode": 137, "interrupted": True, "capacityType": "Spot"},
                {"number": 2, "startedAt": "2024-05-01T10:00:00Z"},
            ],
            "arrayStatusSummary": {"size": 3, "running": 1, "succeeded": 2},
            "conditions": [{"type": "Ready", "status": "True", "observedGeneration": 2}],
            "queuePosition": 4,
        }
    )
    assert status.phase is Phase.RUNNING
    assert status.attempt_count == 2
    assert status.attempts[0].interrupted
    assert status.array_status_summary is not None
    assert status.array_status_summary.succeeded == 2
    out = dump(status)
    assert out["attemptCount"] == 2
    assert out["attempts"][1]["startedAt"] == "2024-05-01T10:00:00Z"
    assert out["conditions"][0]["observedGeneration"] == 2
    assert BatchJobStatus.model_validate(out) == status


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (make_job(arrayProperties={"size": 1}), "spec.arrayProperties.size"),
        (
            make_job(dependsOn=[{"jobName": "a", "condition": "afterok"}]),
            "spec.dependsOn[0].condition",
        ),
        (make_job(retryStrategy={"attempts": 11}), "spec.retryStrategy.attempts"),
        (make_job(queue="typo"), "spec.queue"),
        (make_definition(template={"spec": {"containers": []}}), "spec.template.spec.containers"),
    ],
    ids=["array-size", "condition-enum", "attempts-max", "unknown-field", "no-containers"],
)
def test_parse_errors_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidResource) as info:
        parse(body)
    assert field in [p.field for p in info.value.problems]
    assert field in str(info.value)


def test_parse_reports_every_problem() -> None:
    with pytest.raises(InvalidResource) as info:
        parse_batch_job(
            make_job(arrayProperties={"size": 1, "parallelism": 0}, retryStrategy={"attempts": 0})
        )
    fields = {p.field for p in info.value.problems}
    assert fields == {
        "spec.arrayProperties.size",
        "spec.arrayProperties.parallelism",
        "spec.retryStrategy.attempts",
    }


def test_parse_unknown_kind() -> None:
    with pytest.raises(InvalidResource, match="unknown kind"):
        parse({"kind": "Pod"})
