"""vCPU / memory / GPU arithmetic on integers (milli-CPU, bytes, GPUs).

Pure. Kubernetes quantities ("500m", "2", "1.5", "4Gi", "512Mi", "1e3", "128974848") are parsed
into integers so that sums and comparisons are exact and cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

GPU_RESOURCE = "nvidia.com/gpu"

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> Decimal:
    """Pure: a Kubernetes quantity as an exact ``Decimal`` in base units."""
    if isinstance(value, bool):
        raise QuantityError(f"not a quantity: {value!r}")
    if isinstance(value, int | float):
        return Decimal(str(value))
    s = value.strip()
    if not s:
        raise QuantityError("empty quantity")
    mult: Decimal
    if s[-2:] in _BINARY:
        number, mult = s[:-2], Decimal(_BINARY[s[-2:]])
    elif s[-1:] in _DECIMAL and not s[-1:].isdigit() and s[-1:] not in "eE":
        number, mult = s[:-1], _DECIMAL[s[-1:]]
    else:
        number, mult = s, Decimal(1)
    try:
        d = Decimal(number)
    except InvalidOperation:
        raise QuantityError(f"not a quantity: {value!r}") from None
    if not d.is_finite() or d < 0:
        raise QuantityError(f"not a non-negative quantity: {value!r}")
    return d * mult


def _ceil(d: Decimal) -> int:
    i = int(d)
    return i + 1 if d > i else i


def parse_cpu(value: str | int | float) -> int:
    """Pure: CPU quantity -> milli-CPU, rounded up ("500m" -> 500, "2" -> 2000)."""
    return _ceil(parse_quantity(value) * 1000)


def parse_memory(value: str | int | float) -> int:
    """Pure: memory quantity -> bytes, rounded up ("512Mi" -> 536870912)."""
    return _ceil(parse_quantity(value))


def parse_count(value: str | int | float) -> int:
    """Pure: an integer resource such as GPUs."""
    return _ceil(parse_quantity(value))


Extended = tuple[tuple[str, int], ...]
"""Other resources a pod may ask for (``example.com/fpga``, ``ephemeral-storage``,
``hugepages-2Mi``), as sorted ``(name, amount)`` pairs: hashable, cheap to compare, empty for
almost every job."""

#: Resources every node has unless it says otherwise: a node or instance type that does not
#: list them does not limit them (``ephemeral-storage`` on simulated nodes, hugepages).
IMPLICIT_PREFIXES = ("ephemeral-storage", "hugepages-")


def implicit(name: str) -> bool:
    """Pure: a resource that a capacity not naming it does not limit."""
    return name.startswith(IMPLICIT_PREFIXES)


def _merge(a: Extended, b: Extended, sign: int) -> Extended:
    if not b:
        return a
    out = dict(a)
    for k, v in b:
        out[k] = out.get(k, 0) + sign * v
    return tuple(sorted((k, v) for k, v in out.items() if v))


@dataclass(frozen=True, slots=True)
class Resources:
    """An amount of capacity: milli-CPU, memory bytes, GPUs, and any extended resources."""

    mcpu: int = 0
    memory: int = 0
    gpu: int = 0
    extended: Extended = ()

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.mcpu + other.mcpu,
            self.memory + other.memory,
            self.gpu + other.gpu,
            _merge(self.extended, other.extended, 1),
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.mcpu - other.mcpu,
            self.memory - other.memory,
            self.gpu - other.gpu,
            _merge(self.extended, other.extended, -1),
        )

    def fits_in(self, other: Resources) -> bool:
        """Pure: every dimension of ``self`` is ≤ that of ``other`` (an extended resource
        ``other`` does not list is 0 there, unless it is implicit)."""
        if not (self.mcpu <= other.mcpu and self.memory <= other.memory and self.gpu <= other.gpu):
            return False
        if not self.extended:
            return True
        have = dict(other.extended)
        return all(v <= have[k] if k in have else (v <= 0 or implicit(k)) for k, v in self.extended)

    def amount(self, name: str) -> int:
        """Pure: the amount of one extended resource (0 when absent)."""
        for k, v in self.extended:
            if k == name:
                return v
        return 0

    @property
    def vcpus(self) -> float:
        return self.mcpu / 1000

    def human(self) -> str:
        """Pure: e.g. ``"2 vCPU, 4Gi memory, 1 GPU"`` (plus any extended resources)."""
        text = f"{self.mcpu / 1000:g} vCPU, {human_bytes(self.memory)} memory, {self.gpu} GPU"
        for k, v in self.extended:
            text += f", {k} {v}"
        return text

    @staticmethod
    def from_requests(requests: Mapping[str, str | int | float]) -> Resources:
        """Pure: one container's ``resources.requests``."""
        extended = tuple(
            sorted(
                (name, parse_count(value))
                for name, value in requests.items()
                if name not in ("cpu", "memory", GPU_RESOURCE)
            )
        )
        return Resources(
            parse_cpu(requests["cpu"]) if "cpu" in requests else 0,
            parse_memory(requests["memory"]) if "memory" in requests else 0,
            parse_count(requests[GPU_RESOURCE]) if GPU_RESOURCE in requests else 0,
            tuple((k, v) for k, v in extended if v),
        )


def human_bytes(mem: int) -> str:
    """Pure: ``4Gi``, ``512Mi``, ``100B``: the largest binary unit that reads well."""
    unit = "B"
    for u, m in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if (mem >= m and mem % m == 0) or mem >= 16 * m:
            mem, unit = mem // m, u
            break
    return f"{mem}{unit}"


ZERO = Resources()


def sum_requests(containers: Iterable[Mapping[str, object]]) -> Resources:
    """Pure: the sum of ``resources.requests`` (falling back to ``limits``) over containers.

    Kubernetes defaults a request to its limit when only the limit is set; we do the same.
    """
    total = ZERO
    for c in containers:
        res = c.get("resources") or {}
        if not isinstance(res, Mapping):
            continue
        limits = res.get("limits") or {}
        requests = dict(limits) if isinstance(limits, Mapping) else {}
        req = res.get("requests") or {}
        if isinstance(req, Mapping):
            requests.update(req)
        total = total + Resources.from_requests(requests)
    return total


def validate_job_size(size: Resources) -> str | None:
    """Pure: an error message if the job requests no cpu or no memory (AWS requires both)."""
    missing = [n for n, v in (("cpu", size.mcpu), ("memory", size.memory)) if v <= 0]
    if missing:
        return f"containers request no {' and no '.join(missing)}: set resources.requests"
    return None
