"""Consumable resources in the API (AWS Batch, 2024): the ``ConsumableResource`` kind and what
JobDefinitions and BatchJobs ask of them.

Pure: no I/O. A ``ConsumableResource`` (cluster-scoped, category ``batch``) counts something
that is not a node resource — software licences, a database's connection slots: ``totalQuantity``
units of ``resourceType`` ``REPLENISHABLE`` (returned when the job's attempt ends) or
``NON_REPLENISHABLE`` (used up). Jobs ask for quantities with ``consumableResourceProperties``
(definitions; AWS name) or ``consumableResourcePropertiesOverride`` (BatchJobs, replacing the
definition's list; AWS SubmitJob's name). Semantics: ``kubatch.core.consumables``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kubatch.api.common import Condition, _Model, _Resource, _Status
from kubatch.api.enums import ConsumableResourceType


class ConsumableResourceRequirement(_Model):
    """How many units of one consumable resource a job takes while an attempt runs."""

    consumable_resource: str = Field(min_length=1, max_length=253)
    """Name of a ConsumableResource (one that does not exist yet is waited for)."""
    quantity: int = Field(ge=1)
    """Units taken at admission, all at once with the other resources of the list."""


class ConsumableResourceProperties(_Model):
    """The consumable resources a job needs (AWS ``consumableResourceProperties``)."""

    consumable_resource_list: list[ConsumableResourceRequirement] = Field(
        default_factory=list, max_length=16
    )
    """Each resource at most once."""


class ConsumableResourceSpec(_Model):
    """A pool of units that jobs take (AWS CreateConsumableResource)."""

    total_quantity: int = Field(ge=0)
    """Units in the pool; a change applies at once (lowering it takes nothing back)."""
    resource_type: ConsumableResourceType = ConsumableResourceType.REPLENISHABLE
    """``REPLENISHABLE``: units come back when the attempt ends; ``NON_REPLENISHABLE``: they
    are used up."""


class ConsumableResourceStatus(_Status):
    in_use_quantity: int | None = None
    """Units held by Starting/Running attempts (REPLENISHABLE) or used up (NON_REPLENISHABLE)."""
    available_quantity: int | None = None
    """Units a job can take now: ``totalQuantity - inUseQuantity`` (never below 0)."""
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None


class ConsumableResource(_Resource):
    kind: Literal["ConsumableResource"] = "ConsumableResource"
    spec: ConsumableResourceSpec
    status: ConsumableResourceStatus = Field(default_factory=ConsumableResourceStatus)
