"""The invalid-manifest corpus and the example objects it is checked against.

Each file under ``invalid/`` holds one manifest. Its first line says what is wrong; its second
line says who must catch it:

    # expect: apiserver: <field>: <fragment of the API server's message>
    # expect: validation: <field>: <fragment of kubatch.api.validation's message>
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubatch.api.models import JobDefinition, JobQueue, parse_job_definition, parse_job_queue

ROOT = Path(__file__).resolve().parents[2]
INVALID = Path(__file__).resolve().parent / "invalid"
EXAMPLES = ROOT / "examples"


@dataclass(frozen=True)
class Case:
    path: Path
    what: str
    level: str  # "apiserver" | "validation"
    field: str
    fragment: str
    body: dict[str, Any]

    @property
    def id(self) -> str:
        return self.path.stem

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])


def load_case(path: Path) -> Case:
    text = path.read_text()
    lines = text.splitlines()
    assert lines[0].startswith("# "), f"{path}: first line must say what is wrong"
    expect = lines[1]
    prefix = "# expect: "
    assert expect.startswith(prefix), f"{path}: second line must be '# expect: ...'"
    level, field, fragment = (part.strip() for part in expect[len(prefix) :].split(":", 2))
    assert level in ("apiserver", "validation"), path
    return Case(path, lines[0][2:], level, field, fragment, yaml.safe_load(text))


def load_cases() -> list[Case]:
    return [load_case(p) for p in sorted(INVALID.glob("*.yaml"))]


def example_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def example_lookups() -> tuple[set[str], dict[str, JobQueue], dict[str, JobDefinition]]:
    """Names of the example CEs, and the example queues and definitions by name."""
    docs = example_documents()
    ces = {d["metadata"]["name"] for d in docs if d["kind"] == "ComputeEnvironment"}
    queues = {d["metadata"]["name"]: parse_job_queue(d) for d in docs if d["kind"] == "JobQueue"}
    defs = {
        d["metadata"]["name"]: parse_job_definition(d) for d in docs if d["kind"] == "JobDefinition"
    }
    return ces, queues, defs
