"""``Ref::name`` parameter substitution (AWS Batch job parameters).

Pure. BatchJob ``spec.parameters`` override the JobDefinition's defaults. A placeholder whose
name has no value is left as is (AWS behaviour).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def merge_parameters(
    defaults: Mapping[str, str] | None, overrides: Mapping[str, str] | None
) -> dict[str, str]:
    """Pure: definition defaults overridden by the job's parameters."""
    merged = dict(defaults or {})
    merged.update(overrides or {})
    return merged


def substitute(value: str, params: Mapping[str, str]) -> str:
    """Pure: replace each ``Ref::name`` in ``value`` with ``params[name]`` when present.

    The longest parameter name that follows ``Ref::`` wins (``Ref::a-Ref::b`` with ``a`` and
    ``b`` defined gives both values); unknown placeholders are left as they are.
    """
    if "Ref::" not in value:
        return value
    names = sorted(params, key=len, reverse=True)
    out: list[str] = []
    i = 0
    while (j := value.find("Ref::", i)) != -1:
        out.append(value[i:j])
        rest = value[j + 5 :]
        name = next((n for n in names if n and rest.startswith(n)), None)
        if name is None:
            out.append("Ref::")
            i = j + 5
        else:
            out.append(params[name])
            i = j + 5 + len(name)
    out.append(value[i:])
    return "".join(out)


def substitute_all(values: Sequence[str] | None, params: Mapping[str, str]) -> list[str] | None:
    """Pure: ``substitute`` over a command or args list (``None`` stays ``None``)."""
    if values is None:
        return None
    return [substitute(v, params) for v in values]
