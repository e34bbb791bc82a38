"""kubatch.api.admission: what the validating webhook decides (pure)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from tests.manifests.corpus import Case, example_documents, load_cases

from kubatch.api import admission
from kubatch.api.admission import Request, UserInfo

JsonDict = dict[str, Any]
API = "kubatch.io/v1alpha1"
VALIDATION_CASES = [c for c in load_cases() if c.level == "validation"]


def review(
    obj: JsonDict | None,
    *,
    operation: str = "CREATE",
    old: JsonDict | None = None,
    sub: str | None = None,
    namespace: str | None = "ns",
    user: JsonDict | None = None,
) -> JsonDict:
    kind = (obj or old or {}).get("kind", "BatchJob")
    req: JsonDict = {
        "uid": "uid-1",
        "kind": {"group": "kubatch.io", "version": "v1alpha1", "kind": kind},
        "resource": {"group": "kubatch.io", "version": "v1alpha1", "resource": "batchjobs"},
        "operation": operation,
        "name": ((obj or old or {}).get("metadata") or {}).get("name", ""),
        "object": obj,
        "oldObject": old,
        "userInfo": user or {"username": "alice", "uid": "u-1", "groups": ["team-a"]},
    }
    if namespace:
        req["namespace"] = namespace
    if sub:
        req["subResource"] = sub
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req}


def request(obj: JsonDict | None, **kw: Any) -> Request:
    return admission.parse_review(review(obj, **kw))


def job(name: str = "j", **spec: Any) -> JsonDict:
    return {"apiVersion": API, "kind": "BatchJob", "metadata": {"name": name, "namespace": "ns"},
            "spec": {"jobQueue": "q", "jobDefinition": "d", **spec}}  # fmt: skip


def definition(name: str = "d", **spec: Any) -> JsonDict:
    container = {"name": "main", "image": "busybox", "command": ["run", "Ref::sample"],
                 "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}  # fmt: skip
    meta = {"name": name, "namespace": "ns"}
    return {"apiVersion": API, "kind": "JobDefinition", "metadata": meta,
            "spec": {"template": {"spec": {"containers": [container]}}, **spec}}  # fmt: skip


def queue(name: str = "q", **spec: Any) -> JsonDict:
    return {"apiVersion": API, "kind": "JobQueue", "metadata": {"name": name},
            "spec": {"computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "ce"}],
                     **spec}}  # fmt: skip


GLOB = {"attempts": 2, "evaluateOnExit": [{"onStatusReason": "Host*EC2", "action": "RETRY"}]}


# --------------------------------------------------------------------------- parsing the review


def test_parse_review_reads_what_kubatch_needs() -> None:
    req = request(job(), user={"username": "bob", "uid": "7", "groups": ["g"],
                               "extra": {"scopes": ["a", "b"]}})  # fmt: skip
    assert (req.uid, req.kind, req.operation, req.namespace, req.name) == (
        "uid-1", "BatchJob", "CREATE", "ns", "j",
    )  # fmt: skip
    assert req.user == UserInfo("bob", "7", ("g",), {"scopes": ("a", "b")})


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"kind": "Pod"},
        {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1beta1", "request": {}},
        {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {}},
    ],
    ids=["none", "list", "not-a-review", "v1beta1", "no-uid"],
)
def test_a_malformed_review_is_refused(body: Any) -> None:
    with pytest.raises(admission.MalformedReview):
        admission.parse_review(body)


# --------------------------------------------------------------------------- what is judged


def test_a_valid_job_is_allowed_and_a_glob_in_the_middle_is_denied_naming_the_field() -> None:
    assert admission.admit(request(job())).allowed
    verdict = admission.admit(request(job(retryStrategy=GLOB)))
    assert not verdict.allowed
    assert (verdict.code, verdict.reason) == (422, "Invalid")
    assert verdict.message.startswith('BatchJob "j" is invalid: ')
    field = "spec.retryStrategy.evaluateOnExit[0].onStatusReason"
    assert [p.field for p in verdict.problems] == [field]
    assert "only allowed at the end" in verdict.message
    answer = admission.review_response("uid-1", verdict)["response"]
    assert answer["uid"] == "uid-1"
    assert answer["allowed"] is False
    assert answer["status"]["details"]["causes"][0]["field"] == field
    assert answer["status"]["details"]["kind"] == "BatchJob"
    assert answer["status"]["details"]["name"] == "j"


def test_the_status_subresource_and_deletes_are_never_judged() -> None:
    bad = job(retryStrategy=GLOB)
    assert admission.admit(request(bad, operation="UPDATE", old=bad, sub="status")).allowed
    assert admission.admit(request(None, operation="DELETE", old=bad)).allowed
    assert admission.admit(request(bad, operation="CONNECT")).allowed


def test_a_metadata_only_update_of_an_object_that_predates_the_webhook_is_allowed() -> None:
    bad = job(retryStrategy=GLOB)
    relabelled = copy.deepcopy(bad)
    relabelled["metadata"]["labels"] = {"team": "a"}
    relabelled["metadata"]["finalizers"] = []
    assert admission.admit(request(relabelled, operation="UPDATE", old=bad)).allowed
    edited = copy.deepcopy(bad)
    edited["spec"]["parameters"] = {"x": "1"}
    assert not admission.admit(request(edited, operation="UPDATE", old=bad)).allowed


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"jobQueue": "other"}, ["spec.jobQueue"]),
        (
            {"jobDefinition": "e", "parameters": {"a": "b"}},
            ["spec.jobDefinition", "spec.parameters.a"],
        ),
        ({"arrayProperties": {"size": 20, "parallelism": 2}}, ["spec.arrayProperties.size"]),
        ({"retryStrategy": {"attempts": 3}}, ["spec.retryStrategy"]),
    ],
    ids=["queue", "definition-and-parameters", "array-size", "retry"],
)
def test_immutable_edits_are_denied_naming_each_field(change: JsonDict, fields: list[str]) -> None:
    old = job(arrayProperties={"size": 10, "parallelism": 2})
    new = copy.deepcopy(old)
    new["spec"].update(change)
    verdict = admission.admit(request(new, operation="UPDATE", old=old))
    assert not verdict.allowed
    assert [p.field for p in verdict.problems] == fields
    for f in fields:
        assert f"{f}: cannot change after submission" in verdict.message


def test_mutable_fields_may_change() -> None:
    old = job(arrayProperties={"size": 10, "parallelism": 2})
    new = copy.deepcopy(old)
    new["spec"]["arrayProperties"]["parallelism"] = 5
    new["spec"]["terminate"] = {"reason": "enough"}
    new["spec"]["schedulingPriorityOverride"] = 9
    assert admission.admit(request(new, operation="UPDATE", old=old)).allowed


def test_an_unparseable_old_object_does_not_block_a_valid_edit() -> None:
    old = job()
    old["spec"]["bogus"] = True  # a field this version does not know
    new = job(terminate={"reason": "x"})
    assert admission.admit(request(new, operation="UPDATE", old=old)).allowed


def test_a_consumable_resource_is_judged_too() -> None:
    """The fifth kind: parsed by the models like the others (its schema says the rest)."""
    body = {"apiVersion": "kubatch.io/v1alpha1", "kind": "ConsumableResource",
            "metadata": {"name": "licences"}}  # fmt: skip
    ok = {**body, "spec": {"totalQuantity": 3, "resourceType": "REPLENISHABLE"}}
    assert admission.admit(admission.parse_review(review(ok, namespace=None))).allowed
    bad = {**body, "spec": {"totalQuantity": -1}}
    verdict = admission.admit(admission.parse_review(review(bad, namespace=None)))
    assert not verdict.allowed
    assert "spec.totalQuantity" in verdict.message


def test_other_kinds_are_validated() -> None:
    resources = {"minvCpus": 8, "maxvCpus": 4}
    bad_ce = {"apiVersion": API, "kind": "ComputeEnvironment", "metadata": {"name": "c"},
              "spec": {"type": "Managed", "computeResources": resources}}  # fmt: skip
    v = admission.admit(request(bad_ce, namespace=None))
    assert not v.allowed
    assert [p.field for p in v.problems] == ["spec.computeResources.minvCpus"]
    bad_q = queue(computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "a"},
                                           {"order": 1, "computeEnvironment": "b"}])  # fmt: skip
    v = admission.admit(request(bad_q, namespace=None))
    assert not v.allowed
    assert "order 1 is used more than once" in v.message
    bad_d = definition(retryStrategy=GLOB)
    v = admission.admit(request(bad_d))
    assert not v.allowed
    assert v.message.startswith('JobDefinition "d" is invalid')
    assert admission.admit(request(queue(), namespace=None)).allowed
    assert admission.admit(request(definition())).allowed


def test_a_queue_naming_a_compute_environment_not_yet_applied_is_allowed() -> None:
    assert admission.admit(request(queue(), namespace=None)).allowed


# --------------------------------------------------------------------------- what a job names


def test_lookups_only_for_a_new_batch_job() -> None:
    assert admission.lookups(request(job())) == admission.Lookups("q", ("ns", "d"))
    old = job()
    new = job(terminate={"reason": "x"})
    assert admission.lookups(request(new, operation="UPDATE", old=old)) == admission.Lookups()
    assert admission.lookups(request(definition())) == admission.Lookups()


def test_ref_to_an_undefined_parameter_is_denied_when_the_definition_exists() -> None:
    req = request(job())
    verdict = admission.admit(req, queue=queue(), definition=definition())
    assert not verdict.allowed
    assert [p.field for p in verdict.problems] == ["spec.parameters.sample"]
    ok = request(job(parameters={"sample": "S1"}))
    assert admission.admit(ok, queue=queue(), definition=definition()).allowed


def test_share_identifier_rules_need_the_queue() -> None:
    fair = queue(schedulingPolicy={"shareDistribution": [{"shareIdentifier": "a"}]})
    verdict = admission.admit(request(job(parameters={"sample": "x"})), queue=fair)
    assert not verdict.allowed
    assert verdict.problems[0].field == "spec.shareIdentifier"


def test_missing_references_are_allowed_with_a_warning() -> None:
    verdict = admission.admit(request(job()), missing=["queue", "definition"])
    assert verdict.allowed
    assert len(verdict.warnings) == 2
    assert "JobQueueNotFound" in verdict.warnings[0]
    assert "JobDefinitionNotFound" in verdict.warnings[1]
    answer = admission.review_response("u", verdict)["response"]
    assert answer == {"uid": "u", "allowed": True, "warnings": list(verdict.warnings)}


def test_an_invalid_queue_or_definition_is_ignored_not_fatal() -> None:
    broken = {"apiVersion": API, "kind": "JobQueue", "metadata": {"name": "q"}, "spec": {}}
    assert admission.admit(request(job()), queue=broken, definition={"spec": 3}).allowed


# --------------------------------------------------------------------------- who may submit


def test_a_new_batch_job_needs_a_subject_access_review_for_pods() -> None:
    req = request(job(), user={"username": "alice", "uid": "u-1", "groups": ["team-a"],
                               "extra": {"k": ["v"]}})  # fmt: skip
    body = admission.access_review(req)
    assert body == {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": "alice",
            "uid": "u-1",
            "groups": ["team-a"],
            "extra": {"k": ["v"]},
            "resourceAttributes": {"namespace": "ns", "verb": "create", "group": "",
                                   "version": "v1", "resource": "pods"},
        },
    }  # fmt: skip
    assert admission.access_verdict(req, {"allowed": True}) is None
    denied = admission.access_verdict(req, {"allowed": False, "reason": "no RBAC rule"})
    assert denied is not None
    assert not denied.allowed
    assert (denied.code, denied.reason) == (403, "Forbidden")
    assert 'user "alice" may not create pods in namespace "ns"' in denied.message
    assert "(no RBAC rule)" in denied.message


def test_no_access_review_for_other_kinds_and_updates() -> None:
    assert admission.access_review(request(definition())) is None
    assert admission.access_review(request(job(), operation="UPDATE", old=job())) is None


# --------------------------------------------------------------------------- the configuration


def test_webhook_configuration_by_url_and_by_service() -> None:
    cfg = admission.webhook_configuration("kubatch", ca_bundle="Q0E=", url="https://127.0.0.1:9443")
    (hook,) = cfg["webhooks"]
    assert hook["name"] == "validate.kubatch.io"
    assert hook["clientConfig"] == {"caBundle": "Q0E=", "url": "https://127.0.0.1:9443/validate"}
    assert hook["failurePolicy"] == "Fail"
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    (rule,) = hook["rules"]
    assert rule["operations"] == ["CREATE", "UPDATE"]
    assert sorted(rule["resources"]) == sorted(
        ["batchjobs", "jobdefinitions", "jobqueues", "computeenvironments", "consumableresources"]
    )
    assert not any("/" in r for r in rule["resources"]), "never the status subresource"
    svc = admission.webhook_configuration(
        "k", ca_bundle="", service=("sys", "kubatch-webhook", 443)
    )
    assert svc["webhooks"][0]["clientConfig"] == {
        "service": {"namespace": "sys", "name": "kubatch-webhook", "path": "/validate", "port": 443}
    }
    with pytest.raises(ValueError, match="exactly one"):
        admission.webhook_configuration("k", ca_bundle="")


# --------------------------------------------------------------------------- the invalid corpus


def _examples() -> tuple[dict[str, JsonDict], dict[str, JsonDict]]:
    docs = example_documents()
    queues = {d["metadata"]["name"]: d for d in docs if d["kind"] == "JobQueue"}
    defs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "JobDefinition"}
    return queues, defs


@pytest.mark.parametrize("case", VALIDATION_CASES, ids=lambda c: c.id)
def test_every_validation_level_case_of_the_corpus_is_denied_naming_its_field(case: Case) -> None:
    queues, defs = _examples()
    body = copy.deepcopy(case.body)
    namespaced = case.kind in ("BatchJob", "JobDefinition")
    req = request(body, namespace="corpus" if namespaced else None)
    spec = body.get("spec") or {}
    verdict = admission.admit(
        req,
        queue=queues.get(spec.get("jobQueue", "")),
        definition=defs.get(spec.get("jobDefinition", "")),
    )
    assert not verdict.allowed, case.id
    matching = [p for p in verdict.problems if p.field == case.field]
    assert matching, f"expected {case.field}, got {verdict.problems}"
    assert any(case.fragment in p.message for p in matching)
    assert f"{case.field}: " in verdict.message
