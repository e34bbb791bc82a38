"""The instance catalogue: what each instance type offers and costs.

Pure: a built-in table of instance types (vCPUs, memory, GPUs, other extended resources,
on-demand and spot price per hour, relative depth of the spot capacity pool) that the user may
extend or override (a YAML document: chart value, ConfigMap or file; parsed by
``parse_catalogue`` once the caller has read it). One catalogue serves the operator (fit of
Managed compute environments, cost) and the simulator (which nodes to create). Prices are
realistic us-east-1 figures, rounded; they only need to be plausible relative to each other so
that allocation strategies, ``bidPercentage`` and cost estimates behave as on AWS.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from kubatch.core.resources import Extended, Resources, parse_count

GIB = 1024**3
MIB = 1024**2


class CatalogueError(ValueError):
    """A catalogue document that cannot be used (names the entry and the field)."""


@dataclass(frozen=True, slots=True)
class InstanceType:
    """One instance type: what a node of this type offers and what it costs."""

    name: str
    vcpus: int
    memory_mib: int
    on_demand_price: float
    spot_price: float
    gpus: int = 0
    spot_capacity: float = 0.5
    """Relative depth of the spot pool (0..1): higher = fewer interruptions, preferred by the
    ``SpotCapacityOptimized`` strategies."""
    max_pods: int = 110
    extended: Extended = ()
    """Other resources one node of this type offers (e.g. ``(("example.com/fpga", 1),)``)."""

    @property
    def resources(self) -> Resources:
        """What one empty node of this type can hold."""
        return Resources(self.vcpus * 1000, self.memory_mib * MIB, self.gpus, self.extended)

    @property
    def family(self) -> str:
        """``m5`` for ``m5.xlarge``."""
        return self.name.split(".", 1)[0]

    def price(self, spot: bool) -> float:
        """Price per hour for the given capacity type."""
        return self.spot_price if spot else self.on_demand_price

    def fits(self, vcpus: float, memory_mib: float, gpus: int) -> bool:
        """Whether one pod of this size fits on an empty node of this type."""
        return vcpus <= self.vcpus and memory_mib <= self.memory_mib and gpus <= self.gpus


def _t(
    name: str, shape: tuple[int, int, int], prices: tuple[float, float], cap: float
) -> InstanceType:
    vcpus, mem_gib, gpus = shape
    od, spot = prices
    return InstanceType(name, vcpus, mem_gib * 1024, od, spot, gpus=gpus, spot_capacity=cap)


BUILTIN: tuple[InstanceType, ...] = (
    _t("m5.large", (2, 8, 0), (0.096, 0.035), 0.9),
    _t("m5.xlarge", (4, 16, 0), (0.192, 0.070), 0.85),
    _t("m5.2xlarge", (8, 32, 0), (0.384, 0.145), 0.8),
    _t("m5.4xlarge", (16, 64, 0), (0.768, 0.300), 0.7),
    _t("c5.large", (2, 4, 0), (0.085, 0.032), 0.8),
    _t("c5.xlarge", (4, 8, 0), (0.170, 0.066), 0.75),
    _t("c5.2xlarge", (8, 16, 0), (0.340, 0.134), 0.7),
    _t("c5.4xlarge", (16, 32, 0), (0.680, 0.280), 0.6),
    _t("r5.large", (2, 16, 0), (0.126, 0.040), 0.8),
    _t("r5.xlarge", (4, 32, 0), (0.252, 0.083), 0.75),
    _t("r5.2xlarge", (8, 64, 0), (0.504, 0.170), 0.65),
    _t("r5.4xlarge", (16, 128, 0), (1.008, 0.360), 0.55),
    _t("p3.2xlarge", (8, 61, 1), (3.060, 0.980), 0.3),
)

# AWS Batch's ``optimal`` instance type means "the m, c and r families, newest generation".
OPTIMAL_FAMILIES = ("m5", "c5", "r5")


class Catalogue:
    """An immutable set of instance types, by name."""

    def __init__(self, types: Iterable[InstanceType]) -> None:
        self._types: dict[str, InstanceType] = {t.name: t for t in types}

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __getitem__(self, name: str) -> InstanceType:
        return self._types[name]

    def __iter__(self) -> Iterator[InstanceType]:
        return iter(self._types.values())

    def __len__(self) -> int:
        return len(self._types)

    def get(self, name: str) -> InstanceType | None:
        return self._types.get(name)

    def select(self, wanted: Iterable[str]) -> list[InstanceType]:
        """Instance types matching a CE's ``instanceTypes``. Pure.

        Entries are exact names (``m5.xlarge``), families (``m5``) or ``optimal``; an empty list
        means every type without GPUs (GPU types must be asked for, as on AWS).
        """
        names = [w.strip() for w in wanted if w and w.strip()]
        if not names:
            return [t for t in self._types.values() if t.gpus == 0]
        out: list[InstanceType] = []
        for t in self._types.values():
            for w in names:
                if w in (t.name, t.family) or (w == "optimal" and t.family in OPTIMAL_FAMILIES):
                    out.append(t)
                    break
        return out


def _parse_entry(raw: Mapping[str, Any], base: InstanceType | None) -> InstanceType:
    name = str(raw["name"])
    if base is None:
        missing = [k for k in ("vcpus", "onDemandPrice") if k not in raw]
        if missing or ("memoryMiB" not in raw and "memoryGiB" not in raw):
            raise CatalogueError(
                f"instance type {name}: needs vcpus, memoryMiB/memoryGiB, onDemandPrice"
            )
        base = InstanceType(name, 1, 1, 0.0, 0.0)
    try:
        return _apply(raw, base)
    except (TypeError, ValueError) as err:
        raise CatalogueError(f"instance type {name}: {err}") from None


def _apply(raw: Mapping[str, Any], base: InstanceType) -> InstanceType:
    name = base.name
    mem = base.memory_mib
    if "memoryMiB" in raw:
        mem = int(raw["memoryMiB"])
    elif "memoryGiB" in raw:
        mem = int(float(raw["memoryGiB"]) * 1024)
    od = float(raw.get("onDemandPrice", base.on_demand_price))
    return replace(
        base,
        name=name,
        vcpus=int(raw.get("vcpus", base.vcpus)),
        memory_mib=mem,
        on_demand_price=od,
        spot_price=float(raw.get("spotPrice", base.spot_price if base.spot_price else od * 0.35)),
        gpus=int(raw.get("gpus", base.gpus)),
        spot_capacity=float(raw.get("spotCapacity", base.spot_capacity)),
        max_pods=int(raw.get("maxPods", base.max_pods)),
        extended=_extended(raw.get("extendedResources"), base.extended),
    )


def _extended(raw: Any, base: Extended) -> Extended:
    if raw is None:
        return base
    if not isinstance(raw, Mapping):
        raise CatalogueError("extendedResources must map resource names to quantities")
    return tuple(sorted((str(k), parse_count(v)) for k, v in raw.items()))


def parse_catalogue(doc: Any, base: Iterable[InstanceType] = BUILTIN) -> Catalogue:
    """Build a catalogue from a parsed YAML document. Pure.

    The document is ``{replace: bool, instanceTypes: [{name, vcpus, memoryGiB|memoryMiB,
    onDemandPrice, spotPrice, gpus, extendedResources, spotCapacity, maxPods}]}`` or just the
    list. Entries override built-in types field by field (an entry with only ``name`` and
    ``spotPrice`` re-prices it); ``replace: true`` drops the built-in table. Raises
    :class:`CatalogueError` naming the bad entry.
    """
    if doc is None:
        return Catalogue(base)
    if isinstance(doc, list):
        doc = {"instanceTypes": doc}
    if not isinstance(doc, dict):
        raise CatalogueError("catalogue: expected a mapping or a list of instance types")
    types = {} if doc.get("replace") else {t.name: t for t in base}
    for raw in doc.get("instanceTypes") or []:
        if not isinstance(raw, dict) or "name" not in raw:
            raise CatalogueError(f"catalogue: bad entry {raw!r}")
        types[str(raw["name"])] = _parse_entry(raw, types.get(str(raw["name"])))
    return Catalogue(types.values())


DEFAULT = Catalogue(BUILTIN)
"""The built-in catalogue."""
