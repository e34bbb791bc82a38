"""Every Kubernetes API call the operator makes, in one declared table.

Each row is one (verb, resource[/subresource]) the operator's code performs — reads and
writes — with who makes it (kubatch's own :class:`~kubatch.adapters.kube.Kube`, or kopf's
watches), when (always, or only with the admission webhook, its self-managed certificate,
or the local registration of its configuration), where the chart grants it (the ClusterRole,
or the Role of the operator's own namespace) and whether the grant is limited to the one
object the operator's settings name (RBAC ``resourceNames``).

The table has three users, so that it can never drift from the code or from the chart:

- the adapter: ``Kube(allowed=allowed(...))`` and ``FakeKube(allowed=...)`` raise
  :class:`UndeclaredCall` for any call not in the table (the operator passes it with
  ``--strict-calls``: in the tests, the demo and the e2e stack);
- the chart: ``tests/unit/test_helm_chart.py`` renders ``helm/kubatch`` and checks that its
  ClusterRole and Role grant exactly :func:`rbac_rules` — nothing more, nothing less;
- the RBAC tests on the real plane derive what the ServiceAccount may and may not do from it.

A new API call in the code is a new row here (the tests fail until it is), and the chart's
role follows from the row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from kubatch.adapters.kube import (
    BATCHJOBS,
    COMPUTEENVIRONMENTS,
    CONFIGMAPS,
    CONSUMABLERESOURCES,
    EVENTS,
    JOBDEFINITIONS,
    JOBQUEUES,
    JOBS,
    LEASES,
    NAMESPACES,
    NODES,
    PODS,
    SECRETS,
    SUBJECTACCESSREVIEWS,
    VALIDATINGWEBHOOKCONFIGURATIONS,
    Resource,
)


class UndeclaredCall(AssertionError):
    """An API call outside the declared table (``Kube(allowed=...)``, ``FakeKube(allowed=...)``)."""


class Need(StrEnum):
    """When the operator makes a call."""

    ALWAYS = "always"
    WEBHOOK = "webhook"
    """The admission webhook runs (``--webhook-port``)."""
    CERTS = "certs"
    """The webhook's certificate is the operator's own (not cert-manager's): the Secret that
    holds it and the caBundle of the ValidatingWebhookConfiguration."""
    ELECTION = "election"
    """Leader election among the replicas (the default; ``--no-leader-elect`` runs alone)."""
    REGISTER = "register"
    """``--webhook-register``: the operator writes its ValidatingWebhookConfiguration itself
    (the local plane and tests only; the chart installs the configuration and never grants
    this)."""


class Client(StrEnum):
    KUBATCH = "kubatch"
    """kubatch's own client (:class:`~kubatch.adapters.kube.Kube`): checked by the adapter."""
    KOPF = "kopf"
    """kopf's watches of the kinds it serves (its own client: granted, not checked)."""


class Scope(StrEnum):
    CLUSTER = "cluster"
    """Granted by the chart's ClusterRole."""
    NAMESPACE = "namespace"
    """Granted by the chart's Role in the operator's own namespace."""


@dataclass(frozen=True, slots=True)
class Call:
    verb: str
    """get | list | watch | create | patch | delete (``apply`` is a patch)."""
    resource: Resource
    why: str
    sub: str = ""
    """Subresource (``status``)."""
    client: Client = Client.KUBATCH
    need: Need = Need.ALWAYS
    scope: Scope = Scope.CLUSTER
    named: bool = False
    """Granted only on the object the operator's settings name (``resourceNames``)."""

    @property
    def key(self) -> tuple[str, str]:
        """``(verb, plural[/sub])``: what the adapters check."""
        return self.verb, self.resource.plural + (f"/{self.sub}" if self.sub else "")

    @property
    def rbac_resource(self) -> str:
        return self.resource.plural + (f"/{self.sub}" if self.sub else "")


def _rows() -> tuple[Call, ...]:
    k, kopf = Client.KUBATCH, Client.KOPF
    rows: list[Call] = []
    # kubatch's kinds: kopf watches them; the start-up rebuild lists them; status is ours.
    for res in (COMPUTEENVIRONMENTS, JOBQUEUES, JOBDEFINITIONS, BATCHJOBS, CONSUMABLERESOURCES):
        rows += [
            Call("list", res, "kopf's watch starts with a list", client=kopf),
            Call("watch", res, "kopf's event handlers feed intake", client=kopf),
            Call("list", res, "the start-up rebuild reads every object", client=k),
            Call("patch", res, "status: phase, reason, conditions, counts", sub="status"),
        ]
    rows += [
        Call("delete", BATCHJOBS, "retention: a queue's finished jobs (opt-in)"),
        Call("watch", BATCHJOBS, "a start's catch-up: jobs submitted since its lists", client=k),
        # The webhook reads what a BatchJob names (shareIdentifier rules, Ref:: parameters).
        Call("get", JOBQUEUES, "the webhook checks a job against its queue", need=Need.WEBHOOK),
        Call(
            "get", JOBDEFINITIONS, "the webhook checks a job's Ref:: parameters", need=Need.WEBHOOK
        ),
        # Node pools and namespaces (queue namespaceSelector).
        Call("list", NODES, "kopf's watch of node pools", client=kopf),
        Call("watch", NODES, "kopf's watch of node pools", client=kopf),
        Call("list", NODES, "the start-up rebuild"),
        Call("list", NAMESPACES, "kopf's watch (queue namespaceSelector)", client=kopf),
        Call("watch", NAMESPACES, "kopf's watch (queue namespaceSelector)", client=kopf),
        Call("list", NAMESPACES, "the start-up rebuild"),
        # One Kubernetes Job per attempt, and its pod.
        Call("create", JOBS, "an admitted attempt's Job"),
        Call("get", JOBS, "a Job's verdict when its pod vanished; a 409 on create"),
        Call("list", JOBS, "the rebuild; kubatch's label-selected watch"),
        Call("watch", JOBS, "kubatch's label-selected watch of its Jobs"),
        Call("delete", JOBS, "terminate, timeouts, deleted CEs, retention (pods follow)"),
        Call("list", PODS, "the rebuild; an attempt's pod; the label-selected watch"),
        Call("watch", PODS, "kubatch's label-selected watch of its pods"),
        # Array child records.
        Call("list", CONFIGMAPS, "the rebuild reads array child records"),
        Call("watch", CONFIGMAPS, "kubatch's label-selected watch of array child records"),
        Call("create", CONFIGMAPS, "an array's child record"),
        Call("patch", CONFIGMAPS, "an array's child record"),
        Call("create", EVENTS, "Events a user must notice"),
        # Leader election: one Lease in the operator's own namespace.
        *(
            Call(verb, LEASES, why, need=Need.ELECTION, scope=Scope.NAMESPACE)
            for verb, why in (
                ("get", "who leads, and since when"),
                ("create", "the first replica creates the Lease"),
                ("patch", "take over, renew, release (resourceVersion-guarded)"),
            )
        ),
        # The admission webhook.
        Call(
            "create",
            SUBJECTACCESSREVIEWS,
            "may the submitter of a BatchJob create pods?",
            need=Need.WEBHOOK,
        ),
        Call(
            "get",
            SECRETS,
            "the webhook's certificate, shared by every replica",
            need=Need.CERTS,
            scope=Scope.NAMESPACE,
            named=True,
        ),
        Call(
            "create",
            SECRETS,
            "the first replica to find it missing creates it (409: another did)",
            need=Need.CERTS,
            scope=Scope.NAMESPACE,
        ),
        Call(
            "patch",
            SECRETS,
            "a renewed serving certificate",
            need=Need.CERTS,
            scope=Scope.NAMESPACE,
            named=True,
        ),
        Call("get", VALIDATINGWEBHOOKCONFIGURATIONS, "its caBundle", need=Need.CERTS, named=True),
        Call("patch", VALIDATINGWEBHOOKCONFIGURATIONS, "its caBundle", need=Need.CERTS, named=True),
        Call(
            "create",
            VALIDATINGWEBHOOKCONFIGURATIONS,
            "--webhook-register (local only)",
            need=Need.REGISTER,
        ),
        Call(
            "patch",
            VALIDATINGWEBHOOKCONFIGURATIONS,
            "--webhook-register (local only)",
            need=Need.REGISTER,
        ),
    ]
    return tuple(rows)


CALLS: tuple[Call, ...] = _rows()
"""The table."""


def needs(
    *, webhook: bool, own_certs: bool = True, register: bool = False, election: bool = True
) -> frozenset[Need]:
    """The parts of the table an operator with these settings uses."""
    out = {Need.ALWAYS}
    if election:
        out.add(Need.ELECTION)
    if webhook:
        out.add(Need.WEBHOOK)
        if own_certs:
            out.add(Need.CERTS)
        if register:
            out.add(Need.REGISTER)
    return frozenset(out)


def calls(wanted: Iterable[Need]) -> tuple[Call, ...]:
    wanted = set(wanted)
    return tuple(c for c in CALLS if c.need in wanted)


def allowed(wanted: Iterable[Need], client: Client = Client.KUBATCH) -> frozenset[tuple[str, str]]:
    """``(verb, plural[/sub])`` pairs ``client`` may call (what ``Kube(allowed=)`` checks)."""
    return frozenset(c.key for c in calls(wanted) if c.client is client)


Rules = dict[tuple[str, str, bool], set[str]]
"""``(api group, resource[/sub], named) -> verbs``."""


def rbac_rules(wanted: Iterable[Need], scope: Scope) -> Rules:
    """What the chart must grant in ``scope``, every client included."""
    out: Rules = {}
    for c in calls(wanted):
        if c.scope is scope and c.need is not Need.REGISTER:
            out.setdefault((c.resource.group, c.rbac_resource, c.named), set()).add(c.verb)
    return out


def check(allowed_calls: frozenset[tuple[str, str]] | None, verb: str, plural: str) -> None:
    """Raise :class:`UndeclaredCall` unless ``(verb, plural)`` is allowed (None: anything)."""
    if allowed_calls is not None and (verb, plural) not in allowed_calls:
        raise UndeclaredCall(
            f"undeclared API call: {verb} {plural} (declare it in kubatch.adapters.calls and "
            "grant it in the chart)"
        )
