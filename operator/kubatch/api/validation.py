"""Semantic validation: what a CRD schema cannot express.

Pure: no I/O. Each ``validate_*`` function takes a parsed model (and, where a rule needs other
objects, lookups of the existing ones passed in by the caller) and returns EVERY problem found,
each naming its field. ``check_manifest`` parses a raw manifest first, so malformed input comes
back as problems too instead of an exception.

The operator turns a non-empty result into ``phase: Failed`` / ``reason: InvalidSpec`` for a
BatchJob, or a ``Ready=False`` condition with reason ``InvalidSpec`` for the other kinds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from kubatch.api.models import (
    BatchJob,
    BatchJobSpec,
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
from kubatch.core.resources import QuantityError, sum_requests
from kubatch.core.resources import parse_quantity as core_parse_quantity
from kubatch.core.retry import ExitRule, RetrySpecError

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


def validate_job_queue(jq: JobQueue) -> list[Problem]:
    """Every semantic problem of a JobQueue (pure). A compute environment that does not exist
    (yet) is no problem: the queue is ``Ready=False`` and uses the others meanwhile."""
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
    limit = spec.spending_limit
    if limit is not None and limit.per_hour is None and limit.per_day is None:
        problems.append(Problem("spec.spendingLimit", "give perHour, perDay or both"))
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
    """Rules without a condition, and patterns AWS would reject (``*`` only at the end;
    ``onExitCode`` digits only) — caught here so that a bad rule never reaches the core."""
    problems: list[Problem] = []
    if retry is None:
        return problems
    rules: list[EvaluateOnExit] = retry.evaluate_on_exit
    for i, rule in enumerate(rules):
        field = f"{base}.evaluateOnExit[{i}]"
        if not rule.has_condition:
            problems.append(
                Problem(field, "a rule needs at least one of onExitCode, onReason, onStatusReason")
            )
            continue
        for attr, value in (
            ("onExitCode", rule.on_exit_code),
            ("onReason", rule.on_reason),
            ("onStatusReason", rule.on_status_reason),
        ):
            if value is None:
                continue
            try:
                ExitRule.parse("Retry", **{_SNAKE[attr]: value})
            except RetrySpecError as err:
                text = str(err).split(": ", 1)[-1]
                problems.append(Problem(f"{field}.{attr}", f"{text} (AWS glob syntax)"))
    return problems


_SNAKE = {
    "onExitCode": "on_exit_code",
    "onReason": "on_reason",
    "onStatusReason": "on_status_reason",
}


def _container_problems(containers: Sequence[ContainerShell], base: str) -> list[Problem]:
    problems: list[Problem] = []
    for i in _duplicates([c.name for c in containers]):
        problems.append(
            Problem(f"{base}[{i}].name", f"container name {containers[i].name!r} is used twice")
        )
    for i, c in enumerate(containers):
        res_ = c.resources
        for kind in ("requests", "limits"):
            field = f"{base}[{i}].resources.{kind}"
            for res, qty in sorted(((getattr(res_, kind) if res_ else None) or {}).items()):
                parsed = parse_quantity(qty)
                if parsed is None:
                    problems.append(Problem(f"{field}.{res}", f"{qty!r} is not a quantity"))
                elif res in REQUIRED_REQUESTS and parsed <= 0:
                    problems.append(Problem(f"{field}.{res}", "must be greater than zero"))
    return problems


def size_problems(template: Mapping[str, Any], base: str = "spec") -> list[Problem]:
    """Pure: what a resolved pod template lacks to size the job (AWS: vCPU and memory, from
    the definition or the job's overrides)."""
    try:
        size = sum_requests((template.get("spec") or {}).get("containers") or [])
    except QuantityError as err:
        return [Problem(f"{base}.template.spec.containers", str(err))]
    missing = [n for n, v in (("cpu", size.mcpu), ("memory", size.memory)) if v <= 0]
    if not missing:
        return []
    what = " and ".join(missing)
    return [
        Problem(
            f"{base}.overrides.resources.requests",
            f"the job requests no {what}: set resources.requests.{missing[0]} in the job "
            "definition's containers or in spec.overrides.resources",
        )
    ]


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
    job's namespace by name; the checks that need one run when it exists. A queue or
    definition that does not exist (yet) is no problem: the job waits for it (GitOps applies
    objects in any order).
    """
    problems: list[Problem] = []
    spec = job.spec
    queue = (queues or {}).get(spec.job_queue)
    defn = (definitions or {}).get(spec.job_definition)
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
    problems += _rerun_problems(spec)

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
        problems += size_problems(template)
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


def _rerun_problems(spec: BatchJobSpec) -> list[Problem]:
    rerun = spec.rerun_of
    if rerun is None:
        return []
    problems = []
    base = "spec.rerunOf.indices"
    if any(i < 0 or i > 9999 for i in rerun.indices):
        problems.append(Problem(base, "indices are 0-9999"))
    if _duplicates(rerun.indices):
        problems.append(Problem(base, "an index is listed twice"))
    arr = spec.array_properties
    n = len(rerun.indices)
    if n == 1 and arr is not None:
        problems.append(
            Problem(
                "spec.arrayProperties", "a re-run of one index is a plain job: no arrayProperties"
            )
        )
    elif n > 1 and (arr is None or arr.size != n):
        problems.append(
            Problem("spec.arrayProperties.size", f"must equal the number of indices re-run ({n})")
        )
    return problems


# --------------------------------------------------------------------------- any kind


def validate(
    resource: Resource,
    *,
    queues: Mapping[str, JobQueue] | None = None,
    definitions: Mapping[str, JobDefinition] | None = None,
) -> list[Problem]:
    """Every semantic problem of a parsed resource of any kind (pure)."""
    if isinstance(resource, ComputeEnvironment):
        return validate_compute_environment(resource)
    if isinstance(resource, JobQueue):
        return validate_job_queue(resource)
    if isinstance(resource, JobDefinition):
        return validate_job_definition(resource)
    return validate_batch_job(resource, queues=queues, definitions=definitions)


def check_manifest(
    body: Mapping[str, Any],
    *,
    queues: Mapping[str, JobQueue] | None = None,
    definitions: Mapping[str, JobDefinition] | None = None,
) -> list[Problem]:
    """Parse a raw manifest and validate it: every problem, never an exception (pure)."""
    try:
        resource = parse(body)
    except InvalidResource as err:
        return list(err.problems)
    return validate(resource, queues=queues, definitions=definitions)
