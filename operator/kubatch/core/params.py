"""``Ref::name`` parameter substitution (AWS Batch job parameters).

Pure. BatchJob ``spec.parameters`` override the JobDefinition's defaults. A placeholder whose
name has no value is left as is (AWS behaviour).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

_REF = re.compile(r"Ref::([A-Za-z0-9_\-]+)")


def merge_parameters(
    defaults: Mapping[str, str] | None, overrides: Mapping[str, str] | None
) -> dict[str, str]:
    """Pure: definition defaults overridden by the job's parameters."""
    merged = dict(defaults or {})
    merged.update(overrides or {})
    return merged


def substitute(value: str, params: Mapping[str, str]) -> str:
    """Pure: replace each ``Ref::name`` in ``value`` with ``params[name]`` when present."""
    if "Ref::" not in value:
        return value

    def repl(m: re.Match[str]) -> str:
        return params.get(m.group(1), m.group(0))

    return _REF.sub(repl, value)


def substitute_all(values: Sequence[str] | None, params: Mapping[str, str]) -> list[str] | None:
    """Pure: ``substitute`` over a command or args list (``None`` stays ``None``)."""
    if values is None:
        return None
    return [substitute(v, params) for v in values]
