"""Can a job ever run on a compute environment? The one answer, for every resource.

Pure. A job can ever run on a CE only if one node the CE could have holds all of its requests
at once — vCPU, memory, GPU and any extended resource — and its vCPUs stay within
``maxvCpus``. The nodes a CE could have are its *shapes*: for a Managed CE the instance types
it may launch (from the instance catalogue), for an Unmanaged CE its current nodes (none yet:
the answer is "not known", so its jobs wait instead of failing). The cache (fail fast at
submission), the scheduler (fail fast when a CE changes), the operator's converters (shapes
from nodes and instance types) and the kubectl plugin all ask here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from kubatch.core.catalogue import Catalogue
from kubatch.core.model import ComputeEnvironment, Shape
from kubatch.core.resources import Resources, human_bytes, implicit


class Fit(StrEnum):
    YES = "Yes"  # some shape holds the job
    NO = "No"  # no shape will ever hold it
    UNKNOWN = "Unknown"  # cannot tell yet (unknown CE, Unmanaged CE without nodes)


@dataclass(frozen=True, slots=True)
class CeFit:
    """The verdict for one CE: ``shape`` is the smallest shape that holds the job (YES) or
    the one that comes closest (NO); ``why`` says, in words, what is missing."""

    ce: str
    fit: Fit
    why: str
    shape: Shape | None = None


def shortfall(size: Resources, capacity: Resources) -> list[str]:
    """Pure: each resource ``size`` needs beyond ``capacity``, in words (empty: it fits)."""
    out = []
    if size.mcpu > capacity.mcpu:
        out.append(f"{size.mcpu / 1000:g} vCPU > {capacity.mcpu / 1000:g}")
    if size.memory > capacity.memory:
        out.append(f"{human_bytes(size.memory)} memory > {human_bytes(capacity.memory)}")
    if size.gpu > capacity.gpu:
        out.append(f"{size.gpu} GPU > {capacity.gpu}")
    have = dict(capacity.extended)
    for name, amount in size.extended:
        if name in have:
            if amount > have[name]:
                out.append(f"{amount} {name} > {have[name]}")
        elif amount > 0 and not implicit(name):
            out.append(f"{amount} {name} > 0")
    return out


def pareto(shapes: Iterable[Shape]) -> tuple[Shape, ...]:
    """Pure: the shapes no other shape dominates (same verdicts, fewer to test), in a stable
    order (smallest first by vCPU, memory, GPU, name)."""
    ordered = sorted(
        shapes, key=lambda s: (s.capacity.mcpu, s.capacity.memory, s.capacity.gpu, s.name)
    )
    keep: list[Shape] = []
    for i, s in enumerate(ordered):
        dominated = any(
            s.capacity.fits_in(o.capacity) and s.capacity != o.capacity for o in ordered[i + 1 :]
        ) or any(s.capacity == k.capacity for k in keep)
        if not dominated:
            keep.append(s)
    return tuple(keep)


def managed_shapes(catalogue: Catalogue, instance_types: Sequence[str]) -> tuple[Shape, ...] | None:
    """Pure: the instance types a Managed CE may launch, as shapes (``None`` when one of the
    names is not in the catalogue: then only ``maxvCpus`` can be judged)."""
    wanted = [w.strip() for w in instance_types if w and w.strip()]
    known = {t.name for t in catalogue} | {t.family for t in catalogue} | {"optimal"}
    if any(w not in known for w in wanted):
        return None
    return tuple(Shape(t.name, t.resources) for t in catalogue.select(wanted))


def unknown_instance_types(catalogue: Catalogue, instance_types: Sequence[str]) -> list[str]:
    """Pure: the names a CE lists that the catalogue does not know (to warn about)."""
    known = {t.name for t in catalogue} | {t.family for t in catalogue} | {"optimal"}
    return [w for w in instance_types if w and w.strip() and w.strip() not in known]


def ce_fit(size: Resources, ce: ComputeEnvironment | None, name: str = "") -> CeFit:
    """Pure: can a job of ``size`` ever run on ``ce`` (``None``: a CE not applied yet)?"""
    if ce is None:
        return CeFit(name, Fit.UNKNOWN, "the compute environment does not exist (yet)")
    if size.mcpu > ce.max_vcpus * 1000:
        return CeFit(
            ce.name,
            Fit.NO,
            f"needs {size.mcpu / 1000:g} vCPU > maxvCpus {ce.max_vcpus}",
        )
    shapes = ce.shapes
    if shapes is None:
        return CeFit(ce.name, Fit.YES, "")
    if not shapes:
        if not ce.managed:
            return CeFit(ce.name, Fit.UNKNOWN, "the unmanaged pool has no ready node yet")
        return CeFit(ce.name, Fit.NO, "none of its instance types is in the catalogue")
    best: tuple[int, Shape, list[str]] | None = None
    for shape in shapes:
        missing = shortfall(size, shape.capacity)
        if not missing:
            return CeFit(ce.name, Fit.YES, "", shape)
        if best is None or len(missing) < best[0]:
            best = (len(missing), shape, missing)
    assert best is not None
    _, shape, missing = best
    where = "instance type" if ce.managed else "node"
    largest = max(shapes, key=lambda s: (s.capacity.mcpu, s.capacity.memory, s.capacity.gpu))
    return CeFit(
        ce.name,
        Fit.NO,
        f"no {where} holds it (closest {shape.name}: {'; '.join(missing)}; "
        f"largest {largest.name}: {largest.capacity.human()})",
        shape,
    )


@dataclass(frozen=True, slots=True)
class QueueFit:
    """The verdict over a queue's CEs in order: YES if any CE can hold the job, NO only when
    every CE says NO, else UNKNOWN. ``message`` explains a NO."""

    fit: Fit
    message: str
    per_ce: tuple[CeFit, ...]


def queue_fit(size: Resources, ces: Sequence[tuple[str, ComputeEnvironment | None]]) -> QueueFit:
    """Pure: whether any CE of a queue (``(name, CE or None)`` in order) can ever hold ``size``."""
    verdicts = tuple(ce_fit(size, ce, name) for name, ce in ces)
    if any(v.fit is Fit.YES for v in verdicts):
        return QueueFit(Fit.YES, "", verdicts)
    if not verdicts or any(v.fit is Fit.UNKNOWN for v in verdicts):
        return QueueFit(Fit.UNKNOWN, "", verdicts)
    return QueueFit(Fit.NO, no_fit_message(size, verdicts), verdicts)


def no_fit_message(size: Resources, verdicts: Sequence[CeFit]) -> str:
    """Pure: the fail-fast message: what the job needs and, per CE, why it can never run."""
    reasons = "; ".join(f"{v.ce}: {v.why}" for v in verdicts)
    return (
        f"the job needs {size.human()}; no compute environment of its queue can ever hold "
        f"it ({reasons})"
    )
