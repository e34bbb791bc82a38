"""The four kubatch resources as pydantic v2 models: the single source of truth of the API.

Pure: no I/O. ``kubatch.api.crds`` generates the CustomResourceDefinitions from these models,
``kubatch.api.validation`` checks what a schema cannot express, and the operator parses every
object it receives with the ``parse_*`` helpers below.

Python attributes are snake_case; the wire format (aliases) is camelCase exactly as
SEMANTICS.md and AWS Batch spell it. Models dump by alias: use :func:`dump` for a manifest-ready
``dict``. Attribute docstrings become the CRD's field descriptions. The shared building blocks
(base classes, enums, metadata, conditions ...) live in ``kubatch.api.common``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kubatch.api import consumable, multinode
from kubatch.api.common import (  # re-exported (see __all__)
    API_VERSION,
    CATEGORY,
    CEL,
    GROUP,
    PRESERVE,
    VERSION,
    AllocationStrategy,
    CapacityType,
    ComputeEnvironmentType,
    Condition,
    ConditionStatus,
    ContainerOverrides,
    ContainerResources,
    ContainerShell,
    DependencyCondition,
    DependencyType,
    EnvVar,
    LabelSelector,
    LabelSelectorRequirement,
    ObjectMeta,
    PodSpecShell,
    PodTemplate,
    PodTemplateMeta,
    Quantity,
    QueueOrdering,
    ResourceRequirements,
    RetryAction,
    SelectorOperator,
    State,
    TaintEffect,
    TimeLimitAction,
    Toleration,
    TolerationOperator,
    WaitingState,
    _cel,
    _Model,
    _Resource,
    _Status,
)
from kubatch.api.consumable import ConsumableResource
from kubatch.api.enums import JobDefinitionType
from kubatch.api.preemption import QueuePreemption
from kubatch.api.problems import InvalidResource, problems_from_validation_error
from kubatch.core.lifecycle import Phase

# --------------------------------------------------------------------------- ComputeEnvironment


class ComputeResources(_Model):
    """Size and kind of the pool (AWS ``computeResources``)."""

    capacity_type: CapacityType = Field(CapacityType.ON_DEMAND, alias="capacityType")
    """``OnDemand`` or ``Spot`` (AWS ``type``: EC2/SPOT)."""
    min_vcpus: int = Field(0, ge=0, alias="minvCpus")
    """vCPUs the pool keeps even when idle."""
    max_vcpus: int = Field(ge=0, alias="maxvCpus")
    """Hard cap on the vCPUs of the jobs admitted to this environment."""
    desired_vcpus: int | None = Field(None, ge=0, alias="desiredvCpus")
    """Optional start value of the desired size; kubatch then follows the backlog."""
    instance_types: list[str] = Field(default_factory=list, alias="instanceTypes")
    """Values of node label ``node.kubernetes.io/instance-type``; empty means any."""
    allocation_strategy: AllocationStrategy = Field(
        AllocationStrategy.BEST_FIT, alias="allocationStrategy"
    )
    """How the pool picks instance types when it grows."""
    bid_percentage: int | None = Field(None, ge=1, le=100, alias="bidPercentage")
    """Spot only: highest price to pay, in percent of the on-demand price."""


class ComputeEnvironmentSpec(_Model):
    """A pool of capacity (AWS Batch compute environment)."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            (
                "self.type != 'Managed' || has(self.computeResources)",
                "a Managed compute environment needs computeResources",
            )
        )
    )

    type: ComputeEnvironmentType = ComputeEnvironmentType.MANAGED
    """``Managed``: kubatch sizes the pool; ``Unmanaged``: the matching existing nodes."""
    state: State = State.ENABLED
    """A disabled environment admits nothing new; running jobs finish."""
    compute_resources: ComputeResources | None = None
    """Capacity of the pool; required for Managed environments."""
    node_selector: dict[str, str] = Field(default_factory=dict)
    """Labels of the nodes of this pool; added to the pods of jobs placed here."""
    tolerations: list[Toleration] = Field(default_factory=list)
    """Tolerations added to the pods of jobs placed here (spot pools are tainted)."""

    @property
    def capacity_type(self) -> CapacityType:
        cr = self.compute_resources
        return cr.capacity_type if cr is not None else CapacityType.ON_DEMAND


class ComputeEnvironmentStatus(_Status):
    desired_vcpus: float | None = Field(None, alias="desiredvCpus")
    """vCPUs the pool should have now (published for the cluster autoscaler / simulator)."""
    allocated_vcpus: float | None = Field(None, alias="allocatedvCpus")
    """vCPUs of the jobs admitted to this environment (Starting and Running)."""
    capacity_vcpus: float | None = Field(None, alias="capacityvCpus")
    """vCPUs of the ready nodes of the pool."""
    nodes: int | None = None
    """Number of ready nodes in the pool."""
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None


# --------------------------------------------------------------------------- JobQueue


class ComputeEnvironmentOrder(_Model):
    order: int = Field(ge=0)
    """Lower is tried first."""
    compute_environment: str = Field(min_length=1)
    """Name of a ComputeEnvironment."""


class ShareAttributes(_Model):
    share_identifier: str = Field(min_length=1, max_length=255)
    """A share; may end with ``*`` to match every identifier with that prefix."""
    weight_factor: float = Field(1.0, gt=0, le=1000)
    """Lower weight gets a larger share (as in AWS)."""


class SchedulingPolicy(_Model):
    """Fair-share scheduling (AWS scheduling policy, embedded in the queue)."""

    share_decay_seconds: int = Field(0, ge=0, le=604800)
    """Window over which past usage counts; 0 counts only current usage."""
    compute_reservation: int = Field(0, ge=0, le=99)
    """Percent of capacity kept for share identifiers that are not active yet."""
    share_distribution: list[ShareAttributes] = Field(default_factory=list)
    """Weights per share identifier; unlisted identifiers weigh 1."""


class JobStateTimeLimitAction(_Model):
    state: WaitingState
    """Waiting phase to watch (AWS allows only Runnable)."""
    reason: str | None = None
    """Only jobs waiting with this ``status.reason``; any reason when unset."""
    max_time_seconds: int = Field(ge=1, le=86400)
    """How long a job may wait in ``state`` before ``action``."""
    action: TimeLimitAction
    """``Cancel`` fails the job; ``FallbackToNextComputeEnvironment`` lets it try later CEs."""


class SpendingLimit(_Model):
    """kubatch: a queue's spending limit on the estimated cost of its attempts (node price from
    the instance catalogue x run time x the job's share of the node). When a window's spend
    reaches its limit, new admissions wait (``BudgetExceeded``) until the window frees;
    running jobs are never stopped."""

    per_hour: float | None = Field(None, gt=0)
    """Dollars per sliding hour."""
    per_day: float | None = Field(None, gt=0)
    """Dollars per sliding day (24 hours)."""


class JobQueueSpec(_Model):
    """A queue (AWS Batch job queue)."""

    priority: int = Field(1, ge=0, le=1000)
    """Among queues sharing a compute environment, higher priority is served first."""
    state: State = State.ENABLED
    """A disabled queue accepts submissions and admits nothing."""
    compute_environment_order: list[ComputeEnvironmentOrder] = Field(min_length=1)
    """Compute environments tried in ``order``."""
    scheduling_policy: SchedulingPolicy | None = None
    """Fair share; without it the queue is first-in first-out."""
    ordering: QueueOrdering = QueueOrdering.FIFO
    """``FIFO`` lets smaller later jobs pass one that does not fit; ``StrictFIFO`` does not."""
    job_state_time_limit_actions: list[JobStateTimeLimitAction] = Field(default_factory=list)
    """What to do with jobs that wait too long."""
    namespace_selector: LabelSelector | None = None
    """Namespaces whose BatchJobs may use this queue; all when unset."""
    preemption: QueuePreemption | None = None
    """Reclaim capacity from running jobs for this queue's jobs; none when unset."""
    spending_limit: SpendingLimit | None = None
    """kubatch: dollars per hour and/or per day; admissions wait once reached."""
    finished_job_retention_seconds: int | None = Field(None, ge=0)
    """kubatch: delete this queue's finished BatchJobs this long after they finished (never
    one that an unfinished job depends on). Off by default: GitOps tools re-create what they
    own."""

    @property
    def fair_share(self) -> bool:
        return self.scheduling_policy is not None

    def ordered_compute_environments(self) -> list[str]:
        """Compute environment names in the order they are tried (pure)."""
        return [
            e.compute_environment
            for e in sorted(self.compute_environment_order, key=lambda e: e.order)
        ]


class JobCounts(_Status):
    """Jobs of a queue per phase."""

    submitted: int = 0
    pending: int = 0
    runnable: int = 0
    starting: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0


class QueueSpend(_Status):
    """What a queue's attempts cost lately (estimated dollars) and whether it waits."""

    last_hour: float = 0.0
    last_day: float = 0.0
    blocked_until: datetime | None = None
    """Set while the spending limit is reached: when admissions resume (if nothing more is
    charged)."""


class JobQueueStatus(_Status):
    job_counts: JobCounts | None = None
    spend: QueueSpend | None = None
    admissions_per_minute: float | None = None
    """Attempts admitted per minute over the last 10 minutes (for ETAs and plans)."""
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None


# --------------------------------------------------------------------------- JobDefinition


EXIT_CODE_PATTERN = r"^([0-9]+\*?|\*)$"
ACTION_PATTERN = r"^(?i:retry|exit)$"


class EvaluateOnExit(_Model):
    """A retry rule; the first rule whose given fields all match decides."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            (
                "has(self.onExitCode) || has(self.onReason) || has(self.onStatusReason)",
                "a rule needs onExitCode, onReason or onStatusReason",
            )
        )
    )

    on_exit_code: str | None = Field(None, max_length=512, pattern=EXIT_CODE_PATTERN)
    """Exit code glob: digits, optionally ending with ``*``."""
    on_reason: str | None = Field(None, max_length=512)
    """Glob on the attempt's reason (e.g. ``OOMKilled``)."""
    on_status_reason: str | None = Field(None, max_length=512)
    """Glob on the attempt's status reason."""
    action: str = Field(pattern=ACTION_PATTERN)
    """``Retry`` or ``Exit`` (case-insensitive)."""

    @property
    def retry_action(self) -> RetryAction:
        return RetryAction.RETRY if self.action.lower() == "retry" else RetryAction.EXIT

    @property
    def has_condition(self) -> bool:
        return any(
            v is not None for v in (self.on_exit_code, self.on_reason, self.on_status_reason)
        )


class RetryStrategy(_Model):
    attempts: int = Field(1, ge=1, le=10)
    """Attempts in total (1 = no retry). Spot interruptions do not count."""
    evaluate_on_exit: list[EvaluateOnExit] = Field(default_factory=list, max_length=5)
    """Up to 5 rules; no match means retry while attempts remain."""


class JobTimeout(_Model):
    attempt_duration_seconds: int = Field(ge=60)
    """Limit of each attempt (of each child for arrays), at least 60 seconds."""


class JobDefinitionSpec(_Model):
    """A job definition: pod template, parameter defaults, retry and timeout."""

    type: JobDefinitionType = JobDefinitionType.CONTAINER
    """``container`` (one pod per attempt) or ``multinode`` (``nodeProperties``), as AWS."""
    template: PodTemplate | None = None
    """Pod template of each attempt (required for ``container``; for ``multinode``, of the
    nodes whose range has none)."""
    node_properties: multinode.NodeProperties | None = None
    """The nodes of a ``multinode`` job (AWS ``nodeProperties``)."""
    consumable_resource_properties: consumable.ConsumableResourceProperties | None = None
    """Consumable resources each attempt takes (AWS name)."""
    parameters: dict[str, str] = Field(default_factory=dict)
    """Default values of ``Ref::name`` placeholders in command and args."""
    retry_strategy: RetryStrategy | None = None
    """Attempts and the rules that decide whether a failed attempt is retried."""
    timeout: JobTimeout | None = None
    """Limit of each attempt; none when unset."""
    scheduling_priority: int | None = Field(None, ge=0, le=9999)
    """Order within a share on fair-share queues (higher first)."""
    interruption_budget: int | None = Field(None, ge=0, le=100)
    """kubatch: spot interruptions an attempt may meet before the job falls back to the next
    compute environment (default 3); interruptions never use up ``retryStrategy.attempts``."""


class JobDefinitionStatus(_Status):
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None


# --------------------------------------------------------------------------- BatchJob


class ArrayProperties(_Model):
    size: int = Field(ge=2, le=10000)
    """Number of children (indices 0..size-1)."""
    parallelism: int | None = Field(None, ge=1)
    """kubatch: most children running at once; may change while the array runs."""
    max_failed_children: int | None = Field(None, ge=0, le=10000)
    """kubatch: once more children than this have finally failed, the rest are stopped and
    the array fails; unset lets every child run to its end (AWS)."""


class JobDependency(_Model):
    model_config = ConfigDict(
        json_schema_extra=_cel(
            (
                "!has(self.type) || self.type != 'SEQUENTIAL' || !has(self.jobName)",
                "a SEQUENTIAL dependency names no jobName",
            ),
            (
                "has(self.jobName) || (has(self.type) && self.type == 'SEQUENTIAL')",
                "jobName is required unless type is SEQUENTIAL",
            ),
        )
    )

    job_name: str | None = Field(None, min_length=1)
    """BatchJob in the same namespace (omitted for SEQUENTIAL)."""
    type: DependencyType | None = None
    """``N_TO_N`` (child i waits for child i) or ``SEQUENTIAL`` (children one after another)."""
    condition: DependencyCondition = DependencyCondition.SUCCEEDED
    """``Succeeded`` (afterok), ``Completed`` (afterany) or ``Failed`` (afternotok)."""


class Rerun(_Model):
    """This job re-runs chosen children of an array (``kubectl batch rerun JOB --failed``)."""

    job_name: str = Field(min_length=1)
    """The array re-run (its children get ``KUBATCH_RERUN_OF``)."""
    indices: list[int] = Field(min_length=1, max_length=10000)
    """The original indices, in order: child i of this job runs as index ``indices[i]``
    (``AWS_BATCH_JOB_ARRAY_INDEX``); a single index makes a plain job that keeps it."""


class Terminate(_Model):
    reason: str = "Terminated by user"
    """Recorded in the job's message."""


class BatchJobSpec(_Model):
    """A job submission (AWS SubmitJob)."""

    job_queue: str = Field(min_length=1)
    """Name of a JobQueue."""
    job_definition: str = Field(min_length=1)
    """Name of a JobDefinition in the job's namespace."""
    parameters: dict[str, str] = Field(default_factory=dict)
    """Override the definition's parameter defaults."""
    overrides: ContainerOverrides | None = None
    """Command, args, env and resources of the first container, for this job only."""
    retry_strategy: RetryStrategy | None = None
    """Replaces the definition's retry strategy."""
    timeout: JobTimeout | None = None
    """Replaces the definition's timeout."""
    scheduling_priority_override: int | None = Field(None, ge=0, le=9999)
    """Replaces the definition's schedulingPriority."""
    share_identifier: str | None = Field(None, min_length=1, max_length=255)
    """Required on fair-share queues."""
    array_properties: ArrayProperties | None = None
    """Makes the job an array of ``size`` children."""
    depends_on: list[JobDependency] = Field(default_factory=list)
    """Jobs (by name, same namespace) this job waits for."""
    terminate: Terminate | None = None
    """Cancel/terminate: before Starting → Failed; Starting/Running → pods stopped, then Failed."""
    interruption_budget: int | None = Field(None, ge=0, le=100)
    """Replaces the definition's interruptionBudget (spot interruptions before falling back)."""
    rerun_of: Rerun | None = None
    """kubatch: re-run these indices of another array (arrayProperties.size must equal their
    number when there are several)."""
    node_overrides: multinode.NodeOverrides | None = None
    """A multi-node job's number of nodes and per-range container overrides (AWS name)."""
    consumable_resource_properties_override: consumable.ConsumableResourceProperties | None = None
    """Replaces the definition's consumable resources (AWS SubmitJob's name)."""

    @property
    def is_array(self) -> bool:
        return self.array_properties is not None


class Attempt(_Status):
    """One attempt (of the job, or of an array child)."""

    number: int
    """1-based attempt number."""
    job_name: str | None = None
    """Name of the Kubernetes Job of this attempt."""
    pod_name: str | None = None
    node_name: str | None = None
    compute_environment: str | None = None
    capacity_type: CapacityType | None = None
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    exit_code: int | None = None
    reason: str | None = None
    status_reason: str | None = None
    interrupted: bool = False
    """A spot reclaim or disruption: does not use up ``retryStrategy.attempts``."""
    cost: float | None = None
    """Estimated dollars of this attempt (node price from the instance catalogue x run time x
    the job's share of the node's vCPUs)."""


class ArrayStatusSummary(_Status):
    """Children of an array per phase (bounded whatever the size)."""

    size: int = 0
    submitted: int = 0
    pending: int = 0
    runnable: int = 0
    starting: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0


class JobDefinitionRevision(_Status):
    """The definition as it was when the job was submitted."""

    name: str
    uid: str | None = None
    generation: int | None = None
    template: dict[str, Any] | None = Field(None, json_schema_extra={PRESERVE: True})
    """Resolved pod template (overrides and parameters applied)."""
    retry_strategy: RetryStrategy | None = None
    timeout: JobTimeout | None = None
    scheduling_priority: int | None = None
    interruption_budget: int | None = None
    node_properties: multinode.NodePropertiesRevision | None = None
    """A multi-node job's nodes (resolved; ``template`` is then the main node's)."""
    consumable_resource_properties: consumable.ConsumableResourceProperties | None = None


class BatchJobStatus(_Status):
    phase: Phase | None = None
    reason: str | None = None
    """Machine-readable: ``WaitingForDependencies``, ``InsufficientCapacity``, …"""
    message: str | None = None
    queue_position: int | None = None
    """1-based position among the waiting jobs of its queue (absent when not waiting)."""
    estimated_start_time: datetime | None = None
    """When a waiting job is expected to start: its position over the queue's recent
    admission rate (absent when not waiting or unknown)."""
    compute_environment: str | None = None
    capacity_type: CapacityType | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    attempt_count: int | None = None
    """Number of attempts so far (filled from ``attempts`` when not given)."""
    cost: float | None = None
    """Estimated dollars of all attempts so far."""
    attempts: list[Attempt] = Field(default_factory=list)
    array_status_summary: ArrayStatusSummary | None = None
    nodes: list[multinode.NodeStatus] = Field(default_factory=list)
    """A multi-node job: each node of the current attempt."""
    job_definition: JobDefinitionRevision | None = None
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None

    @model_validator(mode="after")
    def _count_attempts(self) -> BatchJobStatus:
        if self.attempt_count is None and self.attempts:
            self.attempt_count = len(self.attempts)
        return self


# --------------------------------------------------------------------------- resources


class ComputeEnvironment(_Resource):
    kind: Literal["ComputeEnvironment"] = "ComputeEnvironment"
    spec: ComputeEnvironmentSpec
    status: ComputeEnvironmentStatus = Field(default_factory=ComputeEnvironmentStatus)


class JobQueue(_Resource):
    kind: Literal["JobQueue"] = "JobQueue"
    spec: JobQueueSpec
    status: JobQueueStatus = Field(default_factory=JobQueueStatus)


class JobDefinition(_Resource):
    kind: Literal["JobDefinition"] = "JobDefinition"
    spec: JobDefinitionSpec
    status: JobDefinitionStatus = Field(default_factory=JobDefinitionStatus)


class BatchJob(_Resource):
    kind: Literal["BatchJob"] = "BatchJob"
    spec: BatchJobSpec
    status: BatchJobStatus = Field(default_factory=BatchJobStatus)


Resource = ComputeEnvironment | JobQueue | JobDefinition | BatchJob | ConsumableResource
KINDS: dict[str, type[Resource]] = {
    "ComputeEnvironment": ComputeEnvironment,
    "JobQueue": JobQueue,
    "JobDefinition": JobDefinition,
    "BatchJob": BatchJob,
    "ConsumableResource": ConsumableResource,
}

# --------------------------------------------------------------------------- parse / dump

M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], kind: str, body: Mapping[str, Any]) -> M:
    try:
        return model.model_validate(dict(body))
    except ValidationError as err:
        raise InvalidResource(kind, problems_from_validation_error(err)) from err


def parse_compute_environment(body: Mapping[str, Any]) -> ComputeEnvironment:
    """Parse a ComputeEnvironment object; raise :class:`InvalidResource` with every problem."""
    return _parse(ComputeEnvironment, "ComputeEnvironment", body)


def parse_job_queue(body: Mapping[str, Any]) -> JobQueue:
    """Parse a JobQueue object; raise :class:`InvalidResource` with every problem."""
    return _parse(JobQueue, "JobQueue", body)


def parse_job_definition(body: Mapping[str, Any]) -> JobDefinition:
    """Parse a JobDefinition object; raise :class:`InvalidResource` with every problem."""
    return _parse(JobDefinition, "JobDefinition", body)


def parse_batch_job(body: Mapping[str, Any]) -> BatchJob:
    """Parse a BatchJob object; raise :class:`InvalidResource` with every problem."""
    return _parse(BatchJob, "BatchJob", body)


def parse_consumable_resource(body: Mapping[str, Any]) -> ConsumableResource:
    """Parse a ConsumableResource object; raise :class:`InvalidResource` with every problem."""
    return _parse(ConsumableResource, "ConsumableResource", body)


PARSERS: dict[str, Callable[[Mapping[str, Any]], Resource]] = {
    "ComputeEnvironment": parse_compute_environment,
    "JobQueue": parse_job_queue,
    "JobDefinition": parse_job_definition,
    "BatchJob": parse_batch_job,
    "ConsumableResource": parse_consumable_resource,
}


def parse(body: Mapping[str, Any]) -> Resource:
    """Parse any kind of kubatch's by ``body["kind"]`` (pure)."""
    kind = str(body.get("kind", ""))
    parser = PARSERS.get(kind)
    if parser is None:
        from kubatch.api.problems import Problem

        raise InvalidResource(kind or "object", [Problem("kind", f"unknown kind {kind!r}")])
    return parser(body)


def dump(model: BaseModel) -> dict[str, Any]:
    """The manifest form of a model: camelCase, JSON types, unset optionals left out (pure)."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


__all__ = [
    "ACTION_PATTERN",
    "API_VERSION",
    "CATEGORY",
    "CEL",
    "EXIT_CODE_PATTERN",
    "GROUP",
    "KINDS",
    "PARSERS",
    "PRESERVE",
    "VERSION",
    "AllocationStrategy",
    "ArrayProperties",
    "ArrayStatusSummary",
    "Attempt",
    "BatchJob",
    "BatchJobSpec",
    "BatchJobStatus",
    "CapacityType",
    "ComputeEnvironment",
    "ComputeEnvironmentOrder",
    "ComputeEnvironmentSpec",
    "ComputeEnvironmentStatus",
    "ComputeEnvironmentType",
    "ComputeResources",
    "Condition",
    "ConditionStatus",
    "ConsumableResource",
    "ContainerOverrides",
    "ContainerResources",
    "ContainerShell",
    "DependencyCondition",
    "DependencyType",
    "EnvVar",
    "EvaluateOnExit",
    "JobCounts",
    "JobDefinition",
    "JobDefinitionRevision",
    "JobDefinitionSpec",
    "JobDefinitionStatus",
    "JobDefinitionType",
    "JobDependency",
    "JobQueue",
    "JobQueueSpec",
    "JobQueueStatus",
    "JobStateTimeLimitAction",
    "JobTimeout",
    "LabelSelector",
    "LabelSelectorRequirement",
    "M",
    "ObjectMeta",
    "PodSpecShell",
    "PodTemplate",
    "PodTemplateMeta",
    "Quantity",
    "QueueOrdering",
    "QueuePreemption",
    "QueueSpend",
    "Rerun",
    "Resource",
    "ResourceRequirements",
    "RetryAction",
    "RetryStrategy",
    "SchedulingPolicy",
    "SelectorOperator",
    "ShareAttributes",
    "SpendingLimit",
    "State",
    "TaintEffect",
    "Terminate",
    "TimeLimitAction",
    "Toleration",
    "TolerationOperator",
    "WaitingState",
    "dump",
    "parse",
    "parse_batch_job",
    "parse_compute_environment",
    "parse_consumable_resource",
    "parse_job_definition",
    "parse_job_queue",
]
