"""Every answer of the AWS Batch API checked against botocore's own service model.

``check(operation, status, body)`` returns the problems of one answer: for a success, the
raw JSON body is run through botocore's ``ParamValidator`` against the operation's output
shape (required members, types, no unknown members) plus an enum check botocore's validator
does not do; for an error, the body must carry ``__type`` and ``message``. One documented
exemption: ``JobDetail.startedAt`` is marked required in the model, but AWS itself omits it
until a job starts (and so does kubatch).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from botocore.model import ServiceModel, Shape
from botocore.session import get_session
from botocore.validate import ParamValidator

EXEMPT = [re.compile(r'Missing required parameter in jobs\[\d+\]: "startedAt"')]


@cache
def model() -> ServiceModel:
    return get_session().get_service_model("batch")


@cache
def operation_names() -> dict[str, str]:
    """Lower-case wire name -> botocore operation name."""
    return {name.lower(): name for name in model().operation_names}


def _enums(value: Any, shape: Shape, path: str, out: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():  # type: ignore[attr-defined]
            if name in value:
                _enums(value[name], member, f"{path}.{name}", out)
    elif kind == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            _enums(item, shape.member, f"{path}[{i}]", out)  # type: ignore[attr-defined]
    elif kind == "map" and isinstance(value, dict):
        for k, v in value.items():
            _enums(v, shape.value, f"{path}.{k}", out)  # type: ignore[attr-defined]
    elif kind == "string" and getattr(shape, "enum", None) and value not in shape.enum:  # type: ignore[attr-defined]
        out.append(f"{path}: {value!r} is not one of {shape.enum}")  # type: ignore[attr-defined]


def check(operation: str, status: int, body: Any) -> list[str]:
    """The problems of one answer (empty when it conforms)."""
    where = f"{operation or '?'} ({status})"
    if status >= 400:
        if not isinstance(body, dict) or not isinstance(body.get("message"), str):
            return [f"{where}: error body without a message: {body!r}"]
        if not isinstance(body.get("__type"), str):
            return [f"{where}: error body without __type: {body!r}"]
        return []
    name = operation_names().get(operation)
    if name is None:
        return [f"{where}: a success for an unknown operation"]
    shape = model().operation_model(name).output_shape
    if shape is None:
        return [] if body == {} else [f"{where}: body for an operation without output"]
    report = ParamValidator().validate(body, shape)
    problems = []
    if report.has_errors():
        for line in report.generate_report().splitlines():
            if line.strip() and not any(p.search(line) for p in EXEMPT):
                problems.append(f"{where}: {line.strip()}")
    out: list[str] = []
    _enums(body, shape, name, out)
    return problems + [f"{where}: {p}" for p in out]


class Recorder:
    """An observer for :class:`kubatch.batchapi.server.BatchApi` collecting every problem."""

    def __init__(self) -> None:
        self.answers = 0
        self.statuses: dict[int, int] = {}
        self.problems: list[str] = []

    def __call__(self, operation: str, status: int, body: dict[str, Any]) -> None:
        self.answers += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.problems.extend(check(operation, status, body))
