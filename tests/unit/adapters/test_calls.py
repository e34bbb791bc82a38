"""The declared table of API calls, and the adapters that enforce it."""

from __future__ import annotations

import pytest
from tests.unit.adapters.fake_api import FakeApi, Reply, kube_for

from kubatch.adapters import calls
from kubatch.adapters.calls import Client, Need, Scope, UndeclaredCall
from kubatch.adapters.fake import FakeKube
from kubatch.adapters.kube import (
    BATCHJOBS,
    CONFIGMAPS,
    JOBS,
    PODS,
    SECRETS,
    SUBJECTACCESSREVIEWS,
    VALIDATINGWEBHOOKCONFIGURATIONS,
)


def test_rows_are_unique_and_their_verbs_are_kubernetes_verbs() -> None:
    keys = [(c.verb, c.resource, c.sub, c.client, c.need) for c in calls.CALLS]
    assert len(keys) == len(set(keys))
    verbs = {"get", "list", "watch", "create", "patch", "delete"}
    assert {c.verb for c in calls.CALLS} <= verbs, "no update, deletecollection or '*'"
    assert all(c.why for c in calls.CALLS)


def test_what_the_code_never_does_is_not_declared() -> None:
    """The issue's list of over-granted verbs: none of them is a call of the operator."""
    every = calls.allowed(set(Need)) | calls.allowed(set(Need), Client.KOPF)
    for verb, res in [
        ("delete", "pods"),
        ("create", "pods"),
        ("patch", "batchjobs"),
        ("update", "batchjobs/status"),
        ("patch", "events"),
        ("get", "customresourcedefinitions"),
        ("list", "secrets"),
        ("watch", "secrets"),
    ]:
        assert (verb, res) not in every, (verb, res)


def test_needs_select_the_webhook_parts() -> None:
    plain = calls.allowed(calls.needs(webhook=False))
    hook = calls.allowed(calls.needs(webhook=True))
    certman = calls.allowed(calls.needs(webhook=True, own_certs=False))
    local = calls.allowed(calls.needs(webhook=True, register=True))
    sar = ("create", SUBJECTACCESSREVIEWS.plural)
    secret = ("create", SECRETS.plural)
    register = ("create", VALIDATINGWEBHOOKCONFIGURATIONS.plural)
    assert sar not in plain
    assert secret not in plain
    assert sar in hook
    assert secret in hook
    assert register not in hook
    assert sar in certman
    assert secret not in certman
    assert register in local
    assert plain < hook
    assert certman < hook < local


def test_rbac_rules_split_cluster_and_namespace_and_never_grant_registration() -> None:
    every = set(Need)
    cluster = calls.rbac_rules(every, Scope.CLUSTER)
    ns = calls.rbac_rules(every, Scope.NAMESPACE)
    assert ns == {
        ("", "secrets", True): {"get", "patch"},
        ("", "secrets", False): {"create"},
        ("coordination.k8s.io", "leases", False): {"get", "create", "patch"},
    }
    assert ("coordination.k8s.io", "leases", False) not in calls.rbac_rules(
        calls.needs(webhook=True, election=False), Scope.NAMESPACE
    )
    assert cluster[("admissionregistration.k8s.io", "validatingwebhookconfigurations", True)] == {
        "get",
        "patch",
    }
    assert ("admissionregistration.k8s.io", "validatingwebhookconfigurations", False) not in cluster
    assert cluster[("kubatch.io", "batchjobs", False)] == {"list", "watch", "delete"}
    assert cluster[("kubatch.io", "batchjobs/status", False)] == {"patch"}
    assert cluster[("", "pods", False)] == {"list", "watch"}
    assert cluster[("", "events", False)] == {"create"}


async def test_kube_refuses_an_undeclared_call_before_sending_it(api: FakeApi) -> None:
    api.on("GET", "/apis/batch/v1/namespaces/ns/jobs/j", Reply(body={"metadata": {}}))
    kube = kube_for(f"http://127.0.0.1:{api.port}", allowed=calls.allowed({Need.ALWAYS}))
    try:
        await kube.get(JOBS, "j", "ns")  # declared
        with pytest.raises(UndeclaredCall, match="delete pods"):
            await kube.delete(PODS, "p", "ns")
        with pytest.raises(UndeclaredCall, match=r"patch batchjobs \("):
            await kube.patch(BATCHJOBS, "b", {"metadata": {}}, "ns")
        await_status = kube.patch(BATCHJOBS, "b", {"status": {}}, "ns", status=True)
        await_status.close()  # declared (batchjobs/status): checked when awaited only
        with pytest.raises(UndeclaredCall, match="get configmaps"):
            await kube.get(CONFIGMAPS, "c", "ns")
        derived = kube.impersonating("alice")  # a derived client keeps the table
        with pytest.raises(UndeclaredCall):
            await derived.delete(PODS, "p", "ns")
    finally:
        await kube.close()
    assert [s.method for s in api.seen] == ["GET"], "nothing undeclared reached the server"


async def test_fake_kube_enforces_the_same_table() -> None:
    kube = FakeKube(allowed=calls.allowed({Need.ALWAYS}))
    await kube.list(PODS, namespace="ns")
    with pytest.raises(UndeclaredCall):
        await kube.delete(PODS, "p", "ns")
    with pytest.raises(UndeclaredCall):
        await kube.create(SUBJECTACCESSREVIEWS, {"spec": {}})
