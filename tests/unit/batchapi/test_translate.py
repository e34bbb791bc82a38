"""Pure translations: names, ARNs, pod templates, statuses, reasons, children, pagination."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubatch.batchapi import children, eks, jobs, names, pagination, pods
from kubatch.batchapi.errors import ClientError
from kubatch.batchapi.reader import Reader
from kubatch.core.lifecycle import Reason

DNS = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
aws_names = st.from_regex(r"[A-Za-z0-9_-]{1,128}", fullmatch=True)


@given(aws_names)
def test_kube_names_are_dns_labels(name: str) -> None:
    k = names.kube_name(name)
    assert DNS.fullmatch(k)
    assert len(k) <= 63
    assert names.kube_name(name) == k
    if DNS.fullmatch(name) and len(name) <= 63:
        assert k == name


@given(st.sets(aws_names, min_size=2, max_size=20))
def test_kube_names_are_injective(values: set[str]) -> None:
    assert len({names.kube_name(v) for v in values}) == len(values)


def test_case_and_underscore_names_keep_their_aws_name() -> None:
    k = names.kube_name("High_Priority")
    assert k.startswith("high-priority-")
    assert k != names.kube_name("high_priority")
    obj = {"metadata": {"name": k, "annotations": {names.NAME: "High_Priority"}}}
    assert names.aws_name(obj) == "High_Priority"
    assert names.owns(obj, "High_Priority")
    assert not names.owns(obj, "high_priority")
    assert names.revision_object("High_Priority", 3) == f"{k}.3"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("abc", names.JobRef("abc")),
        ("abc:7", names.JobRef("abc", 7)),
        ("arn:aws:batch:us-east-1:111111111111:job/abc:2", names.JobRef("abc", 2)),
        ("arn:aws:batch:us-east-1:999999999999:job/abc", None),  # another account
        ("arn:aws:batch:eu-west-1:111111111111:job/abc", None),  # another region
        ("ABC", None),
        ("abc:x", None),
        ("", None),
    ],
)
def test_job_ids(text: str, expected: names.JobRef | None) -> None:
    assert names.parse_job_id(text, "us-east-1", "111111111111") == expected


def test_definition_refs() -> None:
    assert names.parse_definition_ref("Align_v1") == names.DefinitionRef("Align_v1", None)
    arn = "arn:aws:batch:us-east-1:1:job-definition/Align_v1:4"
    assert names.parse_definition_ref(arn) == names.DefinitionRef("Align_v1", 4)
    for bad in ("a b", "x:0", "x:-1", "x:y", "arn:aws:batch:r:a:job-queue/q"):
        with pytest.raises(ClientError):
            names.parse_definition_ref(bad)


def test_container_properties_to_pod_template() -> None:
    cp = {
        "image": "busybox",
        "command": ["echo", "Ref::x"],
        "environment": [{"name": "A", "value": "1"}],
        "resourceRequirements": [
            {"type": "VCPU", "value": "0.5"},
            {"type": "MEMORY", "value": "2048"},
            {"type": "GPU", "value": "1"},
        ],
        "volumes": [{"name": "Scratch_1"}, {"name": "data", "host": {"sourcePath": "/data"}}],
        "mountPoints": [
            {"sourceVolume": "Scratch_1", "containerPath": "/tmp/s"},
            {"sourceVolume": "data", "containerPath": "/d", "readOnly": True},
        ],
        "user": "1000",
        "logConfiguration": {"logDriver": "awslogs"},
        "jobRoleArn": "arn:aws:iam::1:role/r",
    }
    t = pods.container_template(Reader(cp))
    (c,) = t["spec"]["containers"]
    assert c["args"] == ["echo", "Ref::x"]
    assert "command" not in c
    assert c["resources"] == {
        "requests": {"cpu": "0.5", "memory": "2048Mi", "nvidia.com/gpu": "1"},
        "limits": {"memory": "2048Mi", "nvidia.com/gpu": "1"},
    }
    assert c["env"] == [{"name": "A", "value": "1"}]
    assert c["securityContext"] == {"runAsUser": 1000}
    vols = {v["name"]: v for v in t["spec"]["volumes"]}
    assert vols[names.kube_name("Scratch_1")] == {
        "name": names.kube_name("Scratch_1"),
        "emptyDir": {},
    }
    assert vols["data"]["hostPath"] == {"path": "/data"}
    assert c["volumeMounts"][1] == {"name": "data", "mountPath": "/d", "readOnly": True}
    back = pods.template_container(t)
    assert back["command"] == ["echo", "Ref::x"]
    assert {r["type"]: r["value"] for r in back["resourceRequirements"]} == {
        "VCPU": "0.5",
        "MEMORY": "2048",
        "GPU": "1",
    }


@pytest.mark.parametrize(
    ("cp", "message"),
    [
        ({"command": ["x"]}, "image is required"),
        ({"image": "i", "environment": [{"name": "AWS_BATCH_JOB_ID", "value": "x"}]}, "reserved"),
        (
            {"image": "i", "vcpus": 1, "resourceRequirements": [{"type": "VCPU", "value": "1"}]},
            "both given",
        ),
        ({"image": "i", "resourceRequirements": [{"type": "VCPU", "value": "-1"}]}, "positive"),
        ({"image": "i", "resourceRequirements": [{"type": "DISK", "value": "1"}]}, "not one of"),
        ({"image": "i", "secrets": [{"name": "a", "valueFrom": "arn"}]}, "not supported"),
        (
            {
                "image": "i",
                "volumes": [{"name": "v", "efsVolumeConfiguration": {"fileSystemId": "f"}}],
            },
            "not supported",
        ),
        (
            {"image": "i", "mountPoints": [{"sourceVolume": "nope", "containerPath": "/x"}]},
            "no volume",
        ),
        ({"image": "i", "user": "root"}, "numeric"),
        ({"image": "i", "bogus": 1}, "unknown field"),
        ({"image": 7}, "must be a string"),
    ],
)
def test_container_properties_errors_name_the_field(cp: dict[str, Any], message: str) -> None:
    with pytest.raises(ClientError, match=message):
        pods.container_template(Reader(cp, "containerProperties"))


def test_eks_properties_round_trip() -> None:
    ep = {
        "podProperties": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["sh"],
                    "args": ["-c", "x"],
                    "env": [{"name": "A", "value": "1"}],
                    "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                    "volumeMounts": [{"name": "scratch", "mountPath": "/s"}],
                }
            ],
            "volumes": [{"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}],
            "serviceAccountName": "runner",
            "metadata": {"labels": {"team": "a"}},
        }
    }
    t = eks.pod_template(Reader(ep), "team-a")
    c = t["spec"]["containers"][0]
    assert c["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}  # requests default to limits
    assert t["metadata"] == {"labels": {"team": "a"}}
    back = eks.pod_properties(t)
    assert back["containers"][0]["command"] == ["sh"]
    assert back["serviceAccountName"] == "runner"
    assert back["volumes"] == ep["podProperties"]["volumes"]
    with pytest.raises(ClientError, match="namespace"):
        eks.pod_template(
            Reader({"podProperties": {**ep["podProperties"], "metadata": {"namespace": "other"}}}),
            "team-a",
        )


def test_every_reason_has_a_status_reason_rule() -> None:
    assert set(jobs.STATUS_REASONS) == set(Reason)
    assert jobs.status_reason("DependencyFailed", "x") == "Dependent Job failed"
    assert jobs.status_reason("Terminated", "stop it") == "stop it"
    assert jobs.status_reason(None, None) is None
    assert jobs.aws_status("Runnable") == "RUNNABLE"
    assert jobs.aws_status(None) == "SUBMITTED"
    assert jobs.attempt_reason({"interrupted": True, "nodeName": "n1"}).startswith("Host EC2")


def _k8s_job(index: int, attempt: int, *, complete: bool | None, uid: str = "u") -> dict[str, Any]:
    cond = (
        []
        if complete is None
        else [{"type": "Complete" if complete else "Failed", "status": "True"}]
    )
    return {
        "metadata": {
            "name": f"j-{index}-{attempt}",
            "labels": {
                "kubatch.io/array-index": str(index),
                "kubatch.io/attempt": str(attempt),
                "kubatch.io/batchjob-uid": uid,
            },
        },
        "status": {"conditions": cond},
    }


def _pod(
    index: int, attempt: int, *, exit_code: int | None, running: bool = False
) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if exit_code is not None:
        state = {
            "terminated": {
                "exitCode": exit_code,
                "startedAt": "2026-01-01T00:00:00Z",
                "finishedAt": "2026-01-01T00:00:05Z",
            }
        }
    elif running:
        state = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    return {
        "metadata": {
            "name": f"p-{index}-{attempt}",
            "labels": {"job-name": f"j-{index}-{attempt}"},
        },
        "spec": {"nodeName": "sim-1"},
        "status": {"containerStatuses": [{"state": state}]},
    }


def test_children_states_from_jobs_and_pods() -> None:
    parent = {
        "metadata": {"uid": "u"},
        "spec": {"arrayProperties": {"size": 5}, "retryStrategy": {"attempts": 2}},
        "status": {"phase": "Running"},
    }
    k8s = [
        _k8s_job(0, 1, complete=True),
        _k8s_job(1, 1, complete=False),
        _k8s_job(2, 1, complete=None),
        _k8s_job(3, 1, complete=False),
        _k8s_job(3, 2, complete=False),
        _k8s_job(4, 1, complete=True, uid="other"),
    ]
    pods_ = [
        _pod(0, 1, exit_code=0),
        _pod(1, 1, exit_code=3),
        _pod(2, 1, exit_code=None, running=True),
        _pod(3, 1, exit_code=1),
        _pod(3, 2, exit_code=1),
    ]
    states = children.child_states(parent, k8s, pods_)
    assert {i: c.status for i, c in states.items()} == {
        0: "SUCCEEDED",
        1: "RUNNABLE",
        2: "RUNNING",
        3: "FAILED",
        4: "RUNNABLE",
    }
    assert states[1].attempts[0]["exitCode"] == 3
    assert states[1].attempts[0]["nodeName"] == "sim-1"
    done = {**parent, "status": {"phase": "Failed"}}
    assert children.child_states(done, k8s, pods_)[1].status == "FAILED"


@given(st.lists(st.integers(0, 50), unique=True, max_size=40), st.integers(1, 7))
def test_pages_cover_everything_once(values: list[int], size: int) -> None:
    seen: list[int] = []
    token = None
    for _ in range(100):
        chunk, token = pagination.page(values, lambda v: [v], token=token, limit=size, digest="d")
        assert len(chunk) <= size
        seen += chunk
        if token is None:
            break
    assert seen == sorted(values)


def test_tokens_are_checked() -> None:
    _, token = pagination.page([1, 2, 3], lambda v: [v], token=None, limit=1, digest="a")
    assert token is not None
    with pytest.raises(ClientError, match="different request"):
        pagination.page([1, 2, 3], lambda v: [v], token=token, limit=1, digest="b")
    for bad in ("!!", "e30", "bm90IGpzb24"):
        with pytest.raises(ClientError, match="nextToken"):
            pagination.page([1], lambda v: [v], token=bad, limit=1, digest="a")
