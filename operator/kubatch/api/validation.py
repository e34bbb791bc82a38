"""Semantic validation: what a CRD schema cannot express.

Pure: no I/O. Each ``validate_*`` function takes a parsed model (and, where a rule needs other
objects, lookups of the existing ones passed in by the caller) and returns EVERY problem found,
each naming its field. ``check_manifest`` parses a raw manifest first, so malformed input comes
back as problems too instead of an exception.

The operator turns a non-empty result into ``phase: Failed`` / ``reason: InvalidSpec`` for a
BatchJob, or a ``Ready=False`` condition with reason ``InvalidSpec`` for the other kinds.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from decimal import Decimal
from typing import Any

from kubatch.api.models import (
    BatchJob,
    ComputeEnvironment,
    ComputeEnvironmentType,
    ContainerShell,
    DependencyType,
    EvaluateOnExit,
    JobDefinition,
    JobQueue,
    LabelSelector,
    QueueOrdering,
    Resource,
    RetryStrategy,
    SelectorOperator,
    TaintEffect,
    TolerationOperator,
    parse,
)
from kubatch.api.problems import InvalidResource, Problem
from kubatch.api.resolve import (
    effective_parameters,
    iter_container_strings,
    parameter_references,
    resolve_pod_template,
)
from kubatch.core.resources import QuantityError
from kubatch.core.resources import parse_quantity as core_parse_quantity

__all__ = [
    "Problem",
    "check_manifest",
    "parse_quantity",
    "resolve_pod_template",
    "validate",
    "validate_batch_job",
    "validate_compute_environment",
    "validate_job_definition",
    "validate_job_queue",
]

REQUIRED_REQUESTS = ("cpu", "memory")


def parse_quantity(value: int | str) -> Decimal | None:
    """A Kubernetes quantity as a ``Decimal`` (``"500m"`` → 0.5); ``None`` if malformed (pure)."""
    try:
        return core_parse_quantity(value)
    except QuantityError:
        return None


def _duplicates(values: Sequence[object]) -> list[int]:
    """Indices of values already seen earlier in the sequence (pure)."""
    seen: set[object] = set()
    dups: list[int] = []
    for i, v in enumerate(values):
        if v in seen:
            dups.append(i)
        seen.add(v)
    return dups


# --------------------------------------------------------------------------- ComputeEnvironment


def validate_compute_environment(ce: ComputeEnvironment) -> list[Problem]:
    """Every semantic problem of a ComputeEnvironment (pure)."""
    problems: list[Problem] = []
    spec = ce.spec
    cr = spec.compute_resources
    base = "spec.computeResources"
    if spec.type is ComputeEnvironmentType.MANAGED and cr is None:
        problems.append(
            Problem(base, "a Managed compute environment needs computeResources with maxvCpus")
        )
    if cr is not None:
        if cr.min_vcpus > cr.max_vcpus:
            problems.append(
                Problem(
                    f"{base}.minvCpus",
                    f"minvCpus ({cr.min_vcpus}) must not exceed maxvCpus ({cr.max_vcpus})",
                )
            )
        if cr.desired_vcpus is not None and not cr.min_vcpus <= cr.desired_vcpus <= cr.max_vcpus:
            problems.append(
                Problem(
                    f"{base}.desiredvCpus",
                    f"desiredvCpus ({cr.desired_vcpus}) must lie between minvCpus "
                    f"({cr.min_vcpus}) and maxvCpus ({cr.max_vcpus})",
                )
            )
        on_demand = cr.capacity_type.value == "OnDemand"
        if on_demand and cr.bid_percentage is not None:
            problems.append(
                Problem(f"{base}.bidPercentage", "bidPercentage applies only to Spot capacity")
            )
        if on_demand and cr.allocation_strategy.spot_only:
            problems.append(
                Problem(
                    f"{base}.allocationStrategy",
                    f"{cr.allocation_strategy.value} applies only to Spot capacity",
                )
            )
        for i in _duplicates(cr.instance_types):
            problems.append(
                Problem(
                    f"{base}.instanceTypes[{i}]",
                    f"duplicate instance type {cr.instance_types[i]!r}",
                )
            )
        if spec.type is ComputeEnvironmentType.UNMANAGED:
            if cr.min_vcpus:
                problems.append(
                    Problem(
                        f"{base}.minvCpus",
                        "an Unmanaged compute environment is not scaled: minvCpus must be 0",
                    )
                )
            if cr.desired_vcpus is not None:
                problems.append(
                    Problem(
                        f"{base}.desiredvCpus",
                        "an Unmanaged compute environment is not scaled: desiredvCpus not allowed",
                    )
                )
    for i, tol in enumerate(spec.tolerations):
        field = f"spec.tolerations[{i}]"
        if tol.operator is TolerationOperator.EXISTS and tol.value:
            problems.append(Problem(f"{field}.value", "must be empty when operator is Exists"))
        if tol.operator is TolerationOperator.EQUAL and not tol.key:
            problems.append(Problem(f"{field}.key", "a key is required when operator is Equal"))
        if tol.toleration_seconds is not None and tol.effect is not TaintEffect.NO_EXECUTE:
            problems.append(
                Problem(f"{field}.tolerationSeconds", "applies only to effect NoExecute")
            )
    return problems


# --------------------------------------------------------------------------- JobQueue


def _selector_problems(selector: LabelSelector, base: str) -> list[Problem]:
    problems: list[Problem] = []
    for i, req in enumerate(selector.match_expressions or []):
        field = f"{base}.matchExpressions[{i}].values"
        needs_values = req.operator in (SelectorOperator.IN, SelectorOperator.NOT_IN)
        if needs_values and not req.values:
            problems.append(Problem(field, f"operator {req.operator.value} needs values"))
        if not needs_values and req.values:
            problems.append(Problem(field, f"operator {req.operator.value} takes no values"))
    return problems


def validate_job_queue(
    jq: JobQueue, compute_environments: Collection[str] | None = None
) -> list[Problem]:
    """Every semantic problem of a JobQueue (pure).

    ``compute_environments``: names of the existing ComputeEnvironments; ``None`` skips the
    existence check.
    """
    problems: list[Problem] = []
    spec = jq.spec
    order = spec.compute_environment_order
    if not order:
        problems.append(
            Problem("spec.computeEnvironmentOrder", "at least one compute environment is required")
        )
    for i in _duplicates([e.order for e in order]):
        problems.append(
            Problem(
                f"spec.computeEnvironmentOrder[{i}].order",
                f"order {order[i].order} is used more than once",
            )
        )
    for i in _duplicates([e.compute_environment for e in order]):
        problems.append(
            Problem(
                f"spec.computeEnvironmentOrder[{i}].computeEnvironment",
                f"compute environment {order[i].compute_environment!r} is listed more than once",
            )
        )
    if compute_environments is not None:
        for i, e in enumerate(order):
            if e.compute_environment not in compute_environments:
                problems.append(
                    Problem(
                        f"spec.computeEnvironmentOrder[{i}].computeEnvironment",
                        f"compute environment {e.compute_environment!r} does not exist",
                    )
                )
    policy = spec.scheduling_policy
    if policy is not None:
        if spec.ordering is QueueOrdering.STRICT_FIFO:
            problems.append(
                Problem(
                    "spec.ordering",
                    "StrictFIFO applies only to queues without a schedulingPolicy (fair share)",
                )
            )
        ids = [s.share_identifier for s in policy.share_distribution]
        for i in _duplicates(ids):
            problems.append(
                Problem(
                    f"spec.schedulingPolicy.shareDistribution[{i}].shareIdentifier",
                    f"share identifier {ids[i]!r} is listed more than once",
                )
            )
        for i, ident in enumerate(ids):
            if "*" in ident[:-1]:
                problems.append(
                    Problem(
                        f"spec.schedulingPolicy.shareDistribution[{i}].shareIdentifier",
                        "a wildcard '*' is allowed only at the end",
                    )
                )
    keys = [(a.state, a.reason) for a in spec.job_state_time_limit_actions]
    for i in _duplicates(keys):
        problems.append(
            Problem(
                f"spec.jobStateTimeLimitActions[{i}]",
                f"duplicate action for state {keys[i][0].value} and reason {keys[i][1]!r}",
            )
        )
    for i, action in enumerate(spec.job_state_time_limit_actions):
        if action.action.value == "FallbackToNextComputeEnvironment" and len(order) < 2:
            problems.append(
                Problem(
                    f"spec.jobStateTimeLimitActions[{i}].action",
                    "FallbackToNextComputeEnvironment needs at least two compute environments",
                )
            )
    if spec.namespace_selector is not None:
        problems += _selector_problems(spec.namespace_selector, "spec.namespaceSelector")
    return problems


# --------------------------------------------------------------------------- JobDefinition


def _retry_problems(retry: RetryStrategy | None, base: str) -> list[Problem]:
    problems: list[Problem] = []
    if retry is None:
        return problems
    rules: list[EvaluateOnExit] = retry.evaluate_on_exit
    for i, rule in enumerate(rules):
        if not rule.has_condition:
            problems.append(
                Problem(
                    f"{base}.evaluateOnExit[{i}]",
                    "a rule needs at least one of onExitCode, onReason, onStatusReason",
                )
            )
    return problems


def _container_problems(containers: Sequence[ContainerShell], base: str) -> list[Problem]:
    problems: list[Problem] = []
    for i in _duplicates([c.name for c in containers]):
        problems.append(
            Problem(f"{base}[{i}].name", f"container name {containers[i].name!r} is used twice")
        )
    for i, c in enumerate(containers):
        field = f"{base}[{i}].resources.requests"
        for res in REQUIRED_REQUESTS:
            if res not in c.resources.requests:
                what = "vCPU" if res == "cpu" else "memory"
                problems.append(
                    Problem(
                        f"{field}.{res}",
                        f"a {res} request is required (the job's {what} size)",
                    )
                )
        for res, qty in sorted(c.resources.requests.items()):
            parsed = parse_quantity(qty)
            if parsed is None:
                problems.append(Problem(f"{field}.{res}", f"{qty!r} is not a quantity"))
            elif res in REQUIRED_REQUESTS and parsed <= 0:
                problems.append(Problem(f"{field}.{res}", "must be greater than zero"))
    return problems


def validate_job_definition(jd: JobDefinition) -> list[Problem]:
    """Every semantic problem of a JobDefinition (pure)."""
    spec = jd.spec
    problems = _container_problems(spec.template.spec.containers, "spec.template.spec.containers")
    extra: dict[str, Any] = spec.template.spec.model_extra or {}
    restart = extra.get("restartPolicy")
    if restart not in (None, "Never", "OnFailure"):
        problems.append(
            Problem(
                "spec.template.spec.restartPolicy",
                f"{restart!r} is not allowed: kubatch runs pods with restartPolicy Never "
                "(retries follow retryStrategy)",
            )
        )
    problems += _retry_problems(spec.retry_strategy, "spec.retryStrategy")
    return problems


# --------------------------------------------------------------------------- BatchJob


def validate_batch_job(
    job: BatchJob,
    *,
    queues: Mapping[str, JobQueue] | None = None,
    definitions: Mapping[str, JobDefinition] | None = None,
) -> list[Problem]:
    """Every semantic problem of a BatchJob (pure).

    ``queues``: existing JobQueues by name; ``definitions``: existing JobDefinitions of the
    job's namespace by name. ``None`` skips the checks that need them.
    """
    problems: list[Problem] = []
    spec = job.spec
    queue: JobQueue | None = None
    if queues is not None:
        queue = queues.get(spec.job_queue)
        if queue is None:
            problems.append(
                Problem("spec.jobQueue", f"job queue {spec.job_queue!r} does not exist")
            )
    defn: JobDefinition | None = None
    if definitions is not None:
        defn = definitions.get(spec.job_definition)
        if defn is None:
            ns = job.metadata.namespace or "default"
            problems.append(
                Problem(
                    "spec.jobDefinition",
                    f"job definition {spec.job_definition!r} does not exist in namespace {ns!r}",
                )
            )
    if queue is not None:
        if queue.spec.fair_share and spec.share_identifier is None:
            problems.append(
                Problem(
                    "spec.shareIdentifier",
                    f"required: job queue {spec.job_queue!r} uses fair-share scheduling",
                )
            )
        if not queue.spec.fair_share and spec.share_identifier is not None:
            problems.append(
                Problem(
                    "spec.shareIdentifier",
                    f"job queue {spec.job_queue!r} has no schedulingPolicy: "
                    "shareIdentifier applies only to fair-share queues",
                )
            )

    seen: set[tuple[str | None, DependencyType | None]] = set()
    for i, dep in enumerate(spec.depends_on):
        field = f"spec.dependsOn[{i}]"
        if dep.type is DependencyType.SEQUENTIAL:
            if dep.job_name is not None:
                problems.append(
                    Problem(
                        f"{field}.jobName",
                        "a SEQUENTIAL dependency names no jobName: it orders this array's "
                        "own children",
                    )
                )
            if not spec.is_array:
                problems.append(
                    Problem(f"{field}.type", "SEQUENTIAL needs arrayProperties on this job")
                )
        elif dep.job_name is None:
            problems.append(Problem(f"{field}.jobName", "jobName is required"))
        if dep.type is DependencyType.N_TO_N and not spec.is_array:
            problems.append(Problem(f"{field}.type", "N_TO_N needs arrayProperties on this job"))
        if dep.job_name is not None and dep.job_name == job.metadata.name:
            problems.append(Problem(f"{field}.jobName", "a job cannot depend on itself"))
        dep_key = (dep.job_name, dep.type)
        if dep_key in seen:
            what = f"on {dep.job_name!r}" if dep.job_name else "of type SEQUENTIAL"
            problems.append(Problem(field, f"duplicate dependency {what}"))
        seen.add(dep_key)

    problems += _retry_problems(spec.retry_strategy, "spec.retryStrategy")

    ov = spec.overrides
    if ov is not None:
        if ov.env:
            names = [e.name for e in ov.env]
            for i in _duplicates(names):
                problems.append(
                    Problem(f"spec.overrides.env[{i}].name", f"variable {names[i]!r} set twice")
                )
        if ov.resources is not None:
            for kind in ("requests", "limits"):
                for res, qty in sorted((getattr(ov.resources, kind) or {}).items()):
                    parsed = parse_quantity(qty)
                    field = f"spec.overrides.resources.{kind}.{res}"
                    if parsed is None:
                        problems.append(Problem(field, f"{qty!r} is not a quantity"))
                    elif res in REQUIRED_REQUESTS and parsed <= 0:
                        problems.append(Problem(field, "must be greater than zero"))

    if defn is not None:
        params = effective_parameters(defn, job)
        reported: set[str] = set()
        if ov is not None:
            for attr in ("command", "args"):
                for j, value in enumerate(getattr(ov, attr) or []):
                    for name in parameter_references(value):
                        if name not in params:
                            reported.add(name)
                            problems.append(
                                Problem(
                                    f"spec.overrides.{attr}[{j}]",
                                    f"Ref::{name} refers to an undefined parameter",
                                )
                            )
        template = resolve_pod_template(defn, job)
        for where, value in iter_container_strings(template["spec"]):
            for name in parameter_references(value):
                if name not in params and name not in reported:
                    reported.add(name)
                    problems.append(
                        Problem(
                            f"spec.parameters.{name}",
                            f"Ref::{name} refers to an undefined parameter (used in "
                            f"{where} of job definition {defn.metadata.name!r}); set it in "
                            "spec.parameters",
                        )
                    )
    return problems


# --------------------------------------------------------------------------- any kind


def validate(
    resource: Resource,
    *,
    compute_environments: Collection[str] | None = None,
    queues: Mapping[str, JobQueue] | None = None,
    definitions: Mapping[str, JobDefinition] | None = None,
) -> list[Problem]:
    """Every semantic problem of a parsed resource of any kind (pure)."""
    if isinstance(resource, ComputeEnvironment):
        return validate_compute_environment(resource)
    if isinstance(resource, JobQueue):
        return validate_job_queue(resource, compute_environments)
    if isinstance(resource, JobDefinition):
        return validate_job_definition(resource)
    return validate_batch_job(resource, queues=queues, definitions=definitions)


def check_manifest(
    body: Mapping[str, Any],
    *,
    compute_environments: Collection[str] | None = None,
    queues: Mapping[str, JobQueue] | None = None,
    definitions: Mapping[str, JobDefinition] | None = None,
) -> list[Problem]:
    """Parse a raw manifest and validate it: every problem, never an exception (pure)."""
    try:
        resource = parse(body)
    except InvalidResource as err:
        return list(err.problems)
    return validate(
        resource,
        compute_environments=compute_environments,
        queues=queues,
        definitions=definitions,
    )
