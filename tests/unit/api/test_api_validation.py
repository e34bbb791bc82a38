"""Semantic validation beyond the corpus, and resolution of the attempt's pod template."""

from __future__ import annotations

from typing import Any

from kubatch.api.models import parse_batch_job, parse_job_definition
from kubatch.api.resolve import resolve_pod_template
from kubatch.api.validation import Problem, validate_batch_job

DEFINITION: dict[str, Any] = {
    "kind": "JobDefinition",
    "metadata": {"name": "d"},
    "spec": {
        "parameters": {"input": "a.mov"},
        "template": {
            "metadata": {"annotations": {"sim.kubatch.io/duration": "1"}},
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": "busybox",
                        "command": ["run", "--in=Ref::input", "Ref::out"],
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
                    },
                    {
                        "name": "side",
                        "image": "busybox",
                        "args": ["Ref::input"],
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                    },
                ]
            },
        },
    },
}


def make_job(**spec: Any) -> Any:
    return parse_batch_job(
        {
            "kind": "BatchJob",
            "metadata": {"name": "j", "namespace": "ns"},
            "spec": {"jobQueue": "q", "jobDefinition": "d", **spec},
        }
    )


def test_resolve_applies_parameters_and_overrides() -> None:
    defn = parse_job_definition(DEFINITION)
    job = make_job(
        parameters={"out": "b.mp4"},
        overrides={
            "env": [{"name": "B", "value": "x"}, {"name": "C", "value": "y"}],
            "resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "3Gi"}},
        },
    )
    template = resolve_pod_template(defn, job)
    main, side = template["spec"]["containers"]
    assert main["command"] == ["run", "--in=a.mov", "b.mp4"]
    assert side["args"] == ["a.mov"]
    assert main["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "x"},
        {"name": "C", "value": "y"},
    ]
    assert main["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"memory": "3Gi"},
    }
    assert template["metadata"]["annotations"] == {"sim.kubatch.io/duration": "1"}
    # the definition itself is untouched
    assert defn.spec.template.spec.containers[0].command == ["run", "--in=Ref::input", "Ref::out"]


def test_command_override_replaces_then_substitutes() -> None:
    defn = parse_job_definition(DEFINITION)
    job = make_job(overrides={"command": ["echo", "Ref::input"]}, parameters={"input": "z"})
    template = resolve_pod_template(defn, job)
    assert template["spec"]["containers"][0]["command"] == ["echo", "z"]


def test_undefined_parameter_in_definition_is_reported_once() -> None:
    defn = parse_job_definition(DEFINITION)
    problems = validate_batch_job(make_job(), definitions={"d": defn})
    assert [p for p in problems if "Ref::out" in p.message] == [
        Problem(
            "spec.parameters.out",
            "Ref::out refers to an undefined parameter (used in containers[0].command[2] of "
            "job definition 'd'); set it in spec.parameters",
        )
    ]
    assert validate_batch_job(make_job(parameters={"out": "o"}), definitions={"d": defn}) == []


def test_every_problem_is_returned() -> None:
    job = make_job(
        dependsOn=[{"jobName": "j"}, {"type": "SEQUENTIAL", "jobName": "x"}, {"jobName": "j"}],
        retryStrategy={"evaluateOnExit": [{"action": "Retry"}]},
    )
    # a queue or definition not applied yet is no problem: the job waits (any order)
    problems = validate_batch_job(job, queues={}, definitions={})
    fields = [p.field for p in problems]
    assert fields == [
        "spec.dependsOn[0].jobName",
        "spec.dependsOn[1].jobName",
        "spec.dependsOn[1].type",
        "spec.dependsOn[2].jobName",
        "spec.dependsOn[2]",
        "spec.retryStrategy.evaluateOnExit[0]",
    ]


def test_lookups_are_optional() -> None:
    assert validate_batch_job(make_job()) == []
