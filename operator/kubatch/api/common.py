"""The building blocks of the API models: base classes, enums, and the small Kubernetes
pieces (metadata, conditions, tolerations, label selectors) the four kinds share.

Pure: no I/O. ``kubatch.api.models`` re-exports everything here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

from kubatch.api.enums import (
    AllocationStrategy,
    CapacityType,
    ComputeEnvironmentType,
    ConditionStatus,
    DependencyCondition,
    DependencyType,
    QueueOrdering,
    RetryAction,
    SelectorOperator,
    State,
    TaintEffect,
    TimeLimitAction,
    TolerationOperator,
    WaitingState,
)

__all__ = [
    "AllocationStrategy",
    "CapacityType",
    "ComputeEnvironmentType",
    "ConditionStatus",
    "DependencyCondition",
    "DependencyType",
    "QueueOrdering",
    "RetryAction",
    "SelectorOperator",
    "State",
    "TaintEffect",
    "TimeLimitAction",
    "TolerationOperator",
    "WaitingState",
]

GROUP = "kubatch.io"
VERSION = "v1alpha1"
API_VERSION: Literal["kubatch.io/v1alpha1"] = "kubatch.io/v1alpha1"
CATEGORY = "batch"

PRESERVE = "x-kubernetes-preserve-unknown-fields"
CEL = "x-kubernetes-validations"

#: A Kubernetes resource quantity (``500m``, ``2Gi``, ``4``). Floats are not accepted: write
#: ``"0.5"`` or ``500m``, as the API server's int-or-string type requires.
Quantity = Annotated[int | str, WithJsonSchema({"x-kubernetes-int-or-string": True})]


def _cel(*rules: tuple[str, str]) -> dict[str, Any]:
    return {CEL: [{"rule": rule, "message": message} for rule, message in rules]}


class _Model(BaseModel):
    """Base of every spec model: camelCase on the wire, unknown fields are errors."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )


class _Status(_Model):
    """Base of status models: tolerant of fields written by newer operators."""

    model_config = ConfigDict(extra="ignore")


class _Shell(_Model):
    """A validated shell over an open Kubernetes object: unknown fields are kept as they are."""

    model_config = ConfigDict(extra="allow", json_schema_extra={PRESERVE: True})


# --------------------------------------------------------------------------- enums
# The API's words (StrEnums) live in api/enums.py, which shells (simulator, plugin) import
# without paying for pydantic.

# --------------------------------------------------------------------------- shared pieces


class ObjectMeta(BaseModel):
    """The part of Kubernetes ``metadata`` that kubatch reads; everything else is kept."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="allow",
    )

    name: str = ""
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None


class Condition(_Status):
    """A condition following the Kubernetes API conventions."""

    type: str
    """Condition type, e.g. ``Ready``."""
    status: ConditionStatus
    """``True``, ``False`` or ``Unknown``."""
    observed_generation: int | None = None
    """``metadata.generation`` the condition was computed from."""
    last_transition_time: datetime | None = None
    """When ``status`` last changed."""
    reason: str | None = None
    """Machine-readable CamelCase reason, e.g. ``InvalidSpec``."""
    message: str | None = None
    """Human-readable details."""


class Toleration(_Model):
    """A Kubernetes toleration, added to the pods of jobs placed on this environment."""

    key: str | None = None
    operator: TolerationOperator = TolerationOperator.EQUAL
    value: str | None = None
    effect: TaintEffect | None = None
    toleration_seconds: int | None = None


class LabelSelectorRequirement(_Model):
    key: str
    operator: SelectorOperator
    values: list[str] | None = None


class LabelSelector(_Model):
    """A Kubernetes label selector; an empty selector matches everything."""

    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None


class EnvVar(_Model):
    """A plain ``name``/``value`` environment variable."""

    name: str = Field(min_length=1)
    value: str | None = None


class ResourceRequirements(_Model):
    """Kubernetes container resources."""

    requests: dict[str, Quantity] | None = None
    limits: dict[str, Quantity] | None = None


# --------------------------------------------------------------------------- pod templates


class ContainerResources(_Shell):
    """Container resources. The job's size is the sum of its containers' requests; as on AWS,
    ``cpu`` and ``memory`` may come from the definition or from the job's overrides."""

    requests: dict[str, Quantity] | None = None
    """``cpu``, ``memory``, ``nvidia.com/gpu``, any extended resource."""
    limits: dict[str, Quantity] | None = None


class ContainerShell(_Shell):
    """A container of the pod template: kubatch checks these fields, keeps the rest."""

    name: str = Field(min_length=1)
    image: str = Field(min_length=1)
    command: list[str] | None = None
    args: list[str] | None = None
    resources: ContainerResources | None = None
    """The job's size is the sum of its containers' requests (limits stand in for missing
    requests, as in Kubernetes)."""


class PodSpecShell(_Shell):
    containers: list[ContainerShell] = Field(min_length=1)


class PodTemplateMeta(_Shell):
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class PodTemplate(_Shell):
    """A Kubernetes PodTemplateSpec (only a small shell is validated by the schema)."""

    metadata: PodTemplateMeta | None = None
    spec: PodSpecShell


class ContainerOverrides(_Model):
    """Overrides applied to the first container of the definition's template."""

    command: list[str] | None = None
    args: list[str] | None = None
    env: list[EnvVar] | None = None
    """Merged by name into the container's env."""
    resources: ResourceRequirements | None = None
    """Merged key by key into the container's requests/limits."""


# --------------------------------------------------------------------------- resources


class _Resource(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
    )

    api_version: Literal["kubatch.io/v1alpha1"] = API_VERSION
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
