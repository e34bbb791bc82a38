"""Admission: what kubatch's validating webhook decides, as pure functions.

Pure: no I/O. The webhook server (``kubatch.controller.webhook``) receives an
``AdmissionReview``, reads what a BatchJob names (its queue and definition) and asks the API
server a ``SubjectAccessReview``; everything it decides is here:

- :func:`parse_review` — the parts of an ``AdmissionReview`` request kubatch reads;
- :func:`admit` — parse (``api.models``) and validate (``api.validation``) the object, and for
  an UPDATE of a BatchJob compare the fields that must not change (:func:`immutable_part`,
  :func:`changed_fields`, shared with the operator's intake); every problem names its field;
- :func:`access_review` / :func:`access_verdict` — a BatchJob runs pods whose template may
  name any ServiceAccount, so whoever creates one must be allowed to create pods in its
  namespace (BatchJobs are never a way around RBAC);
- :func:`review_response` — the ``AdmissionReview`` answer;
- :func:`webhook_configuration` — the ``ValidatingWebhookConfiguration`` (the chart renders
  the same; a unit test compares them).

The status subresource is never judged (the operator writes it), nor an UPDATE that leaves the
spec as it was (labels, annotations, finalizers: an object that predates the webhook can
always be relabelled or deleted).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubatch.api.common import GROUP, VERSION
from kubatch.api.models import BatchJob, BatchJobSpec, JobDefinition, JobQueue, dump, parse
from kubatch.api.problems import InvalidResource, Problem
from kubatch.api.validation import validate

JsonDict = dict[str, Any]

WEBHOOK_NAME = "validate.kubatch.io"
"""The webhook's name (kubectl prints it: ``admission webhook "validate.kubatch.io" denied…``)."""
PATH = "/validate"
"""The URL path the webhook server answers on."""
RESOURCES = ("batchjobs", "jobdefinitions", "jobqueues", "computeenvironments",
             "consumableresources")  # fmt: skip
KINDS = ("BatchJob", "JobDefinition", "JobQueue", "ComputeEnvironment", "ConsumableResource")
OPERATIONS = ("CREATE", "UPDATE")
TIMEOUT_SECONDS = 10
REVIEW_VERSION = "admission.k8s.io/v1"

MUTABLE = ("terminate", "schedulingPriorityOverride")
"""Top-level BatchJob spec fields that may change after submission (and
``arrayProperties.parallelism``): SEMANTICS §4."""
MUTABLE_TEXT = (
    "only terminate, arrayProperties.parallelism and schedulingPriorityOverride may change"
)


def immutable_part(spec: BatchJobSpec) -> JsonDict:
    """Pure: the part of a BatchJob spec that must not change after submission."""
    out = {k: v for k, v in dump(spec).items() if k not in MUTABLE}
    arr = out.get("arrayProperties")
    if isinstance(arr, dict):
        out["arrayProperties"] = {k: v for k, v in arr.items() if k != "parallelism"}
    return out


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any], base: str = "spec") -> list[str]:
    """Pure: the field paths that differ between two immutable parts."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed_fields(a, b, f"{base}.{k}")
        else:
            out.append(f"{base}.{k}")
    return out


# --------------------------------------------------------------------------- the request


class MalformedReview(ValueError):
    """Not an ``admission.k8s.io/v1`` AdmissionReview request."""


@dataclass(frozen=True, slots=True)
class UserInfo:
    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Request:
    """The parts of an AdmissionRequest kubatch reads."""

    uid: str
    kind: str
    operation: str
    namespace: str | None
    name: str
    obj: Mapping[str, Any] | None
    old: Mapping[str, Any] | None
    user: UserInfo
    sub_resource: str = ""
    dry_run: bool = False


def parse_review(body: Any) -> Request:
    """Pure: the request of an ``AdmissionReview`` (raises :class:`MalformedReview`)."""
    if not isinstance(body, Mapping) or body.get("kind") != "AdmissionReview":
        raise MalformedReview("the body is not an AdmissionReview")
    if body.get("apiVersion") != REVIEW_VERSION:
        raise MalformedReview(f"only {REVIEW_VERSION} is served, not {body.get('apiVersion')!r}")
    req = body.get("request")
    if not isinstance(req, Mapping) or not req.get("uid"):
        raise MalformedReview("the AdmissionReview has no request with a uid")
    user = req.get("userInfo") or {}
    extra = {str(k): tuple(str(v) for v in vs or ()) for k, vs in (user.get("extra") or {}).items()}
    obj, old = req.get("object"), req.get("oldObject")
    return Request(
        uid=str(req["uid"]),
        kind=str((req.get("kind") or {}).get("kind") or ""),
        operation=str(req.get("operation") or ""),
        namespace=req.get("namespace") or None,
        name=str(req.get("name") or ((obj or {}).get("metadata") or {}).get("name") or ""),
        obj=obj if isinstance(obj, Mapping) else None,
        old=old if isinstance(old, Mapping) else None,
        user=UserInfo(
            username=str(user.get("username") or ""),
            uid=str(user.get("uid") or ""),
            groups=tuple(str(g) for g in user.get("groups") or ()),
            extra=extra,
        ),
        sub_resource=str(req.get("subResource") or ""),
        dry_run=bool(req.get("dryRun")),
    )


# --------------------------------------------------------------------------- the verdict


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    code: int = 200
    reason: str = ""
    message: str = ""
    problems: tuple[Problem, ...] = ()
    warnings: tuple[str, ...] = ()
    kind: str = ""
    name: str = ""


ALLOW = Verdict(True)


def _judged(req: Request) -> bool:
    """Whether the request is one kubatch judges at all."""
    if req.sub_resource or req.operation not in OPERATIONS or req.kind not in KINDS:
        return False
    if req.obj is None:
        return False
    return not (
        req.operation == "UPDATE"
        and req.old is not None
        and req.old.get("spec") == req.obj.get("spec")
    )


@dataclass(frozen=True, slots=True)
class Lookups:
    """What the webhook must read before it judges: a new BatchJob's queue and definition."""

    queue: str | None = None
    definition: tuple[str, str] | None = None  # (namespace, name)


def lookups(req: Request) -> Lookups:
    """Pure: the objects a request's verdict depends on (only a BatchJob CREATE has any)."""
    if not _judged(req) or req.kind != "BatchJob" or req.operation != "CREATE" or req.obj is None:
        return Lookups()
    spec = req.obj.get("spec") or {}
    queue, defn = spec.get("jobQueue"), spec.get("jobDefinition")
    return Lookups(
        queue=queue if isinstance(queue, str) and queue else None,
        definition=(req.namespace or "default", defn) if isinstance(defn, str) and defn else None,
    )


def _parsed(body: Mapping[str, Any] | None, model: type[JobQueue] | type[JobDefinition]) -> Any:
    if body is None:
        return None
    try:
        return model.model_validate(dict(body))
    except ValueError:  # pydantic's ValidationError: an invalid one helps no check
        return None


def admit(
    req: Request,
    *,
    queue: Mapping[str, Any] | None = None,
    definition: Mapping[str, Any] | None = None,
    missing: Iterable[str] = (),
) -> Verdict:
    """Pure: allow or deny ``req``, naming every field that is wrong.

    ``queue`` / ``definition``: the objects a new BatchJob names, when they exist (see
    :func:`lookups`); ``missing``: which of ``"queue"`` and ``"definition"`` were looked up and
    do not exist — no problem (GitOps applies in any order: the job waits), only a warning.
    """
    if not _judged(req):
        return ALLOW
    assert req.obj is not None
    body = {**req.obj, "kind": req.kind}
    try:
        resource = parse(body)
    except InvalidResource as err:
        return _deny(req, list(err.problems))
    queues: dict[str, JobQueue] = {}
    definitions: dict[str, JobDefinition] = {}
    q, d = _parsed(queue, JobQueue), _parsed(definition, JobDefinition)
    if q is not None:
        queues[q.metadata.name] = q
    if d is not None:
        definitions[d.metadata.name] = d
    problems = validate(resource, queues=queues, definitions=definitions)
    if isinstance(resource, BatchJob) and req.operation == "UPDATE" and req.old is not None:
        problems += _immutable_problems(req.old, resource)
    if problems:
        return _deny(req, problems)
    return Verdict(True, warnings=_warnings(resource, set(missing)))


def _immutable_problems(old_body: Mapping[str, Any], new: BatchJob) -> list[Problem]:
    try:
        old = parse({**old_body, "kind": "BatchJob"})
    except InvalidResource:
        return []  # an object that predates the webhook: nothing to compare with
    if not isinstance(old, BatchJob):
        return []
    fields = changed_fields(immutable_part(old.spec), immutable_part(new.spec))
    return [Problem(f, f"cannot change after submission ({MUTABLE_TEXT})") for f in fields]


def _warnings(resource: Any, missing: set[str]) -> tuple[str, ...]:
    if not isinstance(resource, BatchJob):
        return ()
    out = []
    spec = resource.spec
    if "queue" in missing:
        out.append(
            f"job queue {spec.job_queue!r} does not exist (yet): the job waits "
            "(Submitted, JobQueueNotFound) until it does"
        )
    if "definition" in missing:
        out.append(
            f"job definition {spec.job_definition!r} does not exist (yet) in this namespace: "
            "the job waits (Submitted, JobDefinitionNotFound) until it does"
        )
    return tuple(out)


def _deny(req: Request, problems: list[Problem]) -> Verdict:
    what = f'{req.kind} "{req.name}"' if req.name else req.kind
    text = "; ".join(str(p) for p in problems)
    return Verdict(
        False,
        422,
        "Invalid",
        f"{what} is invalid: {text}",
        problems=tuple(problems),
        kind=req.kind,
        name=req.name,
    )


# --------------------------------------------------------------------------- who may submit


def access_review(req: Request) -> JsonDict | None:
    """Pure: the SubjectAccessReview a new BatchJob needs — may its submitter create pods in
    its namespace? (None: the request needs none.)"""
    if not _judged(req) or req.kind != "BatchJob" or req.operation != "CREATE":
        return None
    spec: JsonDict = {
        "user": req.user.username,
        "groups": list(req.user.groups),
        "resourceAttributes": {
            "namespace": req.namespace or "default",
            "verb": "create",
            "group": "",
            "version": "v1",
            "resource": "pods",
        },
    }
    if req.user.uid:
        spec["uid"] = req.user.uid
    if req.user.extra:
        spec["extra"] = {k: list(v) for k, v in req.user.extra.items()}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


def access_verdict(req: Request, review_status: Mapping[str, Any]) -> Verdict | None:
    """Pure: a denial when the SubjectAccessReview's answer is no (None when allowed)."""
    if review_status.get("allowed") is True:
        return None
    ns = req.namespace or "default"
    why = str(review_status.get("reason") or "").strip()
    return Verdict(
        False,
        403,
        "Forbidden",
        f'user "{req.user.username}" may not create pods in namespace "{ns}": a BatchJob runs '
        "pods (its template may name any service account), so submitting one needs that "
        "permission" + (f" ({why})" if why else ""),
    )


# --------------------------------------------------------------------------- the answer


def review_response(uid: str, verdict: Verdict) -> JsonDict:
    """Pure: the ``AdmissionReview`` kubatch answers with."""
    response: JsonDict = {"uid": uid, "allowed": verdict.allowed}
    if not verdict.allowed:
        status: JsonDict = {
            "status": "Failure",
            "code": verdict.code,
            "reason": verdict.reason,
            "message": verdict.message,
        }
        if verdict.problems:  # kubectl: The BatchJob "x" is invalid: <field>: <message>
            status["details"] = {
                "name": verdict.name,
                "group": GROUP,
                "kind": verdict.kind,
                "causes": [
                    {"reason": "FieldValueInvalid", "field": p.field, "message": p.message}
                    for p in verdict.problems
                ],
            }
        response["status"] = status
    if verdict.warnings:
        response["warnings"] = list(verdict.warnings)
    return {"apiVersion": REVIEW_VERSION, "kind": "AdmissionReview", "response": response}


def rules() -> list[JsonDict]:
    """Pure: the webhook's rules — kubatch's five kinds on CREATE and UPDATE, never ``/status``."""
    return [
        {
            "apiGroups": [GROUP],
            "apiVersions": [VERSION],
            "operations": list(OPERATIONS),
            "resources": list(RESOURCES),
            "scope": "*",
        }
    ]


def webhook_configuration(
    name: str,
    *,
    ca_bundle: str,
    url: str | None = None,
    service: tuple[str, str, int] | None = None,
    labels: Mapping[str, str] | None = None,
) -> JsonDict:
    """Pure: kubatch's ValidatingWebhookConfiguration, reached by ``url`` or by ``service``
    ``(namespace, name, port)``; ``ca_bundle`` is the base64 PEM of the CA."""
    if (url is None) == (service is None):
        raise ValueError("webhook_configuration: give exactly one of url and service")
    client: JsonDict = {"caBundle": ca_bundle} if ca_bundle else {}
    if url is not None:
        client["url"] = url.rstrip("/") + PATH if not url.endswith(PATH) else url
    else:
        assert service is not None
        ns, svc, port = service
        client["service"] = {"namespace": ns, "name": svc, "path": PATH, "port": port}
    meta: JsonDict = {"name": name}
    if labels:
        meta["labels"] = dict(labels)
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": meta,
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "clientConfig": client,
                "rules": rules(),
                "failurePolicy": "Fail",
                "matchPolicy": "Equivalent",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": TIMEOUT_SECONDS,
            }
        ],
    }
