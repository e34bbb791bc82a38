"""Problems found in a manifest: a field path and a message.

Pure: no I/O. Both the parse helpers (pydantic errors) and the semantic validation functions
report through :class:`Problem`, so the operator shows one kind of message whatever the level.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import ValidationError


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a manifest.

    ``field`` is a dotted path with list indices, as the API server writes it
    (``spec.dependsOn[1].jobName``); ``message`` says what is wrong in words a user acts on.
    """

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class InvalidResource(ValueError):
    """A manifest that cannot be parsed into its model; carries every problem found."""

    def __init__(self, kind: str, problems: Sequence[Problem]) -> None:
        self.kind = kind
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__(f"invalid {kind}: " + "; ".join(str(p) for p in self.problems))


def field_path(loc: Iterable[int | str]) -> str:
    """Render a pydantic/JSON location as ``a.b[0].c`` (pure)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def problems_from_validation_error(err: ValidationError, prefix: str = "") -> list[Problem]:
    """Translate a pydantic ``ValidationError`` into problems with field paths (pure).

    Locations produced by union/tagged validators (e.g. ``function-after[...]``) are dropped so
    that the path names only the user's fields.
    """
    problems: list[Problem] = []
    for e in err.errors(include_url=False):
        loc = [p for p in e["loc"] if isinstance(p, int) or "[" not in p]
        path = field_path(loc)
        if prefix:
            path = f"{prefix}.{path}" if path and not path.startswith("[") else prefix + path
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        problems.append(Problem(path or prefix or "(root)", msg))
    return problems
