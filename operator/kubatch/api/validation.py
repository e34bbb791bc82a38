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

from kubatch.api.consumable import ConsumableResourceProperties
from kubatch.api.enums import FairSharePreemption
from kubatch.api.models import (
    BatchJob,
    BatchJobSpec,
    ComputeEnvironment,
    ComputeEnvironmentType,
    ConsumableResource,
    ContainerShell,
    DependencyType,
    EvaluateOnExit,
    JobDefinition,
    JobDefinitionType,
    JobQueue,
    LabelSelector,
    PodTemplate,
    QueueOrdering,
    Resource,
    RetryStrategy,
    SelectorOperator,
    TaintEffect,
    TolerationOperator,
    parse,
)
from kubatch.api.multinode import node_sources, open_ended, parse_targets
from kubatch.api.problems import InvalidResource, Problem
from kubatch.api.resolve import (
    effective_parameters,
    iter_container_strings,
    num_nodes,
    parameter_references,
    resolve_node_properties,
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
    "validate_consumable_resource",
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
    pre = spec.preemption
    if (
        pre is not None
        and pre.within_fair_share is FairSharePreemption.OVER_FAIR_SHARE
        and (policy is None)
    ):
        problems.append(
            Problem(
                "spec.preemption.withinFairShare",
                "OverFairShare needs a schedulingPolicy (fair share) on this queue",
            )
        )
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


def _template_problems(template: PodTemplate, base: str) -> list[Problem]:
    problems = _container_problems(template.spec.containers, f"{base}.spec.containers")
    extra: dict[str, Any] = template.spec.model_extra or {}
    restart = extra.get("restartPolicy")
    if restart not in (None, "Never", "OnFailure"):
        problems.append(
            Problem(
                f"{base}.spec.restartPolicy",
                f"{restart!r} is not allowed: kubatch runs pods with restartPolicy Never "
                "(retries follow retryStrategy)",
            )
        )
    return problems


def validate_job_definition(jd: JobDefinition) -> list[Problem]:
    """Every semantic problem of a JobDefinition (pure)."""
    spec = jd.spec
    problems: list[Problem] = []
    if spec.template is not None:
        problems += _template_problems(spec.template, "spec.template")
    npp = spec.node_properties
    if spec.type is JobDefinitionType.CONTAINER:
        if spec.template is None:
            problems.append(Problem("spec.template", "required for a container job definition"))
        if npp is not None:
            problems.append(
                Problem("spec.nodeProperties", "allowed only with type multinode (AWS)")
            )
    elif npp is None:
        problems.append(Problem("spec.nodeProperties", "required for type multinode"))
    else:
        base = "spec.nodeProperties"
        if npp.main_node >= npp.num_nodes:
            problems.append(
                Problem(f"{base}.mainNode", f"must be below numNodes ({npp.num_nodes})")
            )
        for i, r in enumerate(npp.node_range_properties):
            if r.template is not None:
                problems += _template_problems(
                    r.template, f"{base}.nodeRangeProperties[{i}].template"
                )
        problems += _node_range_problems(jd, npp.num_nodes, base)
    problems += _retry_problems(spec.retry_strategy, "spec.retryStrategy")
    problems += _consumable_problems(
        spec.consumable_resource_properties, "spec.consumableResourceProperties"
    )
    return problems


def _node_range_problems(jd: JobDefinition, n: int, base: str) -> list[Problem]:
    """The ranges of a multi-node definition for ``n`` nodes: valid, covering every node, each
    node with a template."""
    npp = jd.spec.node_properties
    assert npp is not None
    ranges = npp.node_range_properties
    if not ranges:
        if jd.spec.template is None:
            return [Problem(f"{base}.nodeRangeProperties", "required without spec.template")]
        return []
    sources = node_sources([r.target_nodes for r in ranges], n)
    if isinstance(sources, str):
        return [Problem(f"{base}.{sources.split(':', 1)[0]}", sources.split(": ", 1)[1])]
    missing = [i for i, s in enumerate(sources) if s is None]
    if missing:
        listed = ", ".join(str(i) for i in missing[:10])
        return [
            Problem(
                f"{base}.nodeRangeProperties",
                f"the ranges must account for every node (0:{n - 1}); missing: {listed}",
            )
        ]
    if jd.spec.template is None:
        bare = sorted({s for s in sources if s is not None and ranges[s].template is None})
        return [
            Problem(f"{base}.nodeRangeProperties[{i}].template", "required without spec.template")
            for i in bare
        ]
    return []


def _consumable_problems(props: ConsumableResourceProperties | None, base: str) -> list[Problem]:
    names = [r.consumable_resource for r in (props.consumable_resource_list if props else [])]
    return [
        Problem(
            f"{base}.consumableResourceList[{i}].consumableResource",
            f"consumable resource {names[i]!r} is listed more than once",
        )
        for i in _duplicates(names)
    ]


def validate_consumable_resource(res: ConsumableResource) -> list[Problem]:
    """Every semantic problem of a ConsumableResource (pure): the schema says it all."""
    _ = res
    return []


def _multinode_job_problems(job: BatchJob, defn: JobDefinition) -> list[Problem]:
    """What a BatchJob may not ask of a multi-node definition, or of a container one."""
    spec = job.spec
    no = spec.node_overrides
    npp = defn.spec.node_properties
    if npp is None:
        if no is not None:
            return [Problem("spec.nodeOverrides", "allowed only for a multinode job definition")]
        return []
    problems = []
    if spec.array_properties is not None:
        problems.append(
            Problem(
                "spec.arrayProperties",
                "a multi-node parallel job cannot be an array job (as on AWS)",
            )
        )
    if spec.overrides is not None:
        problems.append(
            Problem(
                "spec.overrides",
                "not for a multi-node job: use nodeOverrides.nodePropertyOverrides (as on AWS)",
            )
        )
    n = num_nodes(defn, job) or npp.num_nodes
    if no is not None and no.num_nodes and no.num_nodes != npp.num_nodes:
        field = "spec.nodeOverrides.numNodes"
        if not any(open_ended(r.target_nodes) for r in npp.node_range_properties) and (
            npp.node_range_properties
        ):
            problems.append(
                Problem(field, "needs a range of the job definition that ends open ('n:')")
            )
        if npp.main_node >= n:
            problems.append(Problem(field, f"must be above the main node ({npp.main_node})"))
        problems += [Problem(f"{field}", p.message) for p in _node_range_problems(defn, n, field)]
    for k, o in enumerate(no.node_property_overrides if no is not None else []):
        span = parse_targets(o.target_nodes, n)
        if isinstance(span, str):
            field = f"spec.nodeOverrides.nodePropertyOverrides[{k}].targetNodes"
            problems.append(Problem(field, span))
    if problems:
        return problems
    nodes = resolve_node_properties(defn, job)
    assert nodes is not None
    for r in nodes.node_range_properties:
        if size_problems(r.template or {}):
            problems.append(
                Problem(
                    "spec.nodeOverrides.nodePropertyOverrides",
                    f"nodes {r.target_nodes} request no cpu or no memory: set "
                    "resources.requests in their range's template or in a node property override",
                )
            )
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
    problems += _consumable_problems(
        spec.consumable_resource_properties_override, "spec.consumableResourcePropertiesOverride"
    )

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
        multinode = _multinode_job_problems(job, defn)
        if multinode or (defn.spec.template is None and defn.spec.node_properties is None):
            return problems + multinode
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
        nodes = resolve_node_properties(defn, job)
        if nodes is None:
            templates = [resolve_pod_template(defn, job)]
            problems += size_problems(templates[0])
        else:
            templates = [r.template or {} for r in nodes.node_range_properties]
        strings = [x for t in templates for x in iter_container_strings(t.get("spec") or {})]
        for where, value in strings:
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
    if isinstance(resource, ConsumableResource):
        return validate_consumable_resource(resource)
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
