from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubatch.core.lifecycle import (
    TRANSITIONS,
    AdmissionRolledBack,
    Admitted,
    AttemptRetried,
    AttemptSucceeded,
    DependenciesMet,
    Event,
    IllegalTransition,
    JobFailed,
    Phase,
    PodStarted,
    Validated,
    can_transition,
    next_phase,
    render_lifecycle_doc,
)

ALL_EVENTS: list[Event] = [
    Validated(),
    DependenciesMet(),
    Admitted(),
    PodStarted(),
    AttemptSucceeded(),
    AttemptRetried(),
    JobFailed(),
    AdmissionRolledBack(),
]

LEGAL = [
    ("submitted-with-deps", Phase.SUBMITTED, Validated(), Phase.PENDING),
    ("submitted-no-deps", Phase.SUBMITTED, DependenciesMet(), Phase.RUNNABLE),
    ("deps-met", Phase.PENDING, DependenciesMet(), Phase.RUNNABLE),
    ("dependency-failed", Phase.PENDING, JobFailed(), Phase.FAILED),
    ("admitted", Phase.RUNNABLE, Admitted(), Phase.STARTING),
    ("pod-started", Phase.STARTING, PodStarted(), Phase.RUNNING),
    ("rollback", Phase.STARTING, AdmissionRolledBack(), Phase.RUNNABLE),
    ("succeeded", Phase.RUNNING, AttemptSucceeded(), Phase.SUCCEEDED),
    ("retry", Phase.RUNNING, AttemptRetried(), Phase.RUNNABLE),
    ("retries-exhausted", Phase.RUNNING, JobFailed(), Phase.FAILED),
    ("cancel-runnable", Phase.RUNNABLE, JobFailed(), Phase.FAILED),
]


@pytest.mark.parametrize(
    ("phase", "event", "expected"), [c[1:] for c in LEGAL], ids=[c[0] for c in LEGAL]
)
def test_legal_transitions(phase: Phase, event: Event, expected: Phase) -> None:
    assert next_phase(phase, event) is expected


ILLEGAL = [
    ("pending-cannot-start", Phase.PENDING, Admitted()),
    ("runnable-cannot-run", Phase.RUNNABLE, PodStarted()),
    ("submitted-cannot-succeed", Phase.SUBMITTED, AttemptSucceeded()),
    ("succeeded-is-final", Phase.SUCCEEDED, AttemptRetried()),
    ("failed-is-final", Phase.FAILED, DependenciesMet()),
]


@pytest.mark.parametrize(("phase", "event"), [c[1:] for c in ILLEGAL], ids=[c[0] for c in ILLEGAL])
def test_illegal_transitions_raise(phase: Phase, event: Event) -> None:
    with pytest.raises(IllegalTransition):
        next_phase(phase, event)
    assert not can_transition(phase, event)


@given(st.sampled_from([Phase.SUCCEEDED, Phase.FAILED]), st.sampled_from(ALL_EVENTS))
def test_terminal_phases_are_final(phase: Phase, event: Event) -> None:
    with pytest.raises(IllegalTransition):
        next_phase(phase, event)


def test_no_edge_leaves_a_terminal_phase() -> None:
    assert all(not src.terminal for src, _ in TRANSITIONS)


def test_every_phase_is_reachable() -> None:
    reached = {Phase.SUBMITTED} | set(TRANSITIONS.values())
    assert reached == set(Phase)


def test_committed_doc_is_generated_from_the_table() -> None:
    doc = Path(__file__).resolve().parents[3] / "docs" / "lifecycle.md"
    assert doc.read_text() == render_lifecycle_doc()
