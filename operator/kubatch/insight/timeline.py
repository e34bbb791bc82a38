"""What happened, over time: when each job (and each array child) waited, started and ran, on
which compute environment and capacity type, with interruptions and retries marked. Pure.

The sources, all plain objects from the API server:

- a BatchJob's status: ``createdAt``, ``stoppedAt`` and ``attempts[]`` (compute environment,
  capacity type, node, start and stop of the container, exit code, ``interrupted``);
- the Kubernetes Jobs of its attempts (label ``kubatch.io/batchjob-uid``): when each attempt
  was admitted (the Job's creation), and for array children — whose attempts are not in the
  parent's status — which child (``kubatch.io/array-index``) and attempt, on which compute
  environment and capacity type;
- their pods: when the container ran and how it ended (also for children);
- an array's child records (``kubatch.api.records``): each child's final phase and how many
  of its attempts failed or were interrupted.

Everything is optional but the BatchJobs: without Jobs, pods or records a lane shows less
detail, never a wrong one. :func:`build_timeline` returns a :class:`Timeline` of lanes;
:mod:`kubatch.insight.draw` renders it as terminal text, SVG or HTML.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from kubatch.api import labels as L
from kubatch.api.records import DATA_KEY, ChildRow, parse_rows
from kubatch.core.lifecycle import Phase, Reason
from kubatch.insight.attempts import Attempt, as_int, attempt_key, collect
from kubatch.insight.objects import (
    created_at,
    labels_of,
    name_of,
    phase_of,
    status_of,
)
from kubatch.timefmt import parse_time

DEFAULT_CHILDREN = 50
"""Children drawn per array unless told otherwise (the others are counted, not drawn)."""


class Span(StrEnum):
    """What a job was doing during a segment."""

    WAITING = "Waiting"  # submitted, waiting for dependencies or capacity
    STARTING = "Starting"  # admitted (Kubernetes Job created), container not running yet
    RUNNING = "Running"  # the container ran


class Outcome(StrEnum):
    """How an attempt ended (on its last segment)."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"  # the job's (or child's) final failure
    RETRIED = "Retried"  # failed, and the retry strategy tried again
    INTERRUPTED = "Interrupted"  # its node was reclaimed or it was disrupted
    ENDED = "Ended"  # ended, failed or interrupted: the records do not say which
    ONGOING = "Ongoing"  # not ended yet


@dataclass(frozen=True, slots=True)
class Segment:
    """One stretch of a lane."""

    span: Span
    start: float
    end: float
    attempt: int | None = None
    compute_environment: str = ""
    capacity_type: str = ""  # Spot | OnDemand | ""
    node: str = ""
    outcome: Outcome | None = None  # set on the last segment of an attempt
    detail: str = ""  # exit code, reason

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass(frozen=True, slots=True)
class Lane:
    """One job (or one array child, or an array's parent with its children)."""

    key: str  # namespace/name or namespace/name:index
    label: str  # name, or name[index] for a child
    queue: str
    phase: Phase
    reason: str
    segments: tuple[Segment, ...]
    attempts: int = 0
    retries: int = 0
    interruptions: int = 0
    cost: float | None = None
    array_size: int | None = None
    children: tuple[Lane, ...] = ()
    hidden_children: int = 0
    running: tuple[tuple[float, int], ...] = ()
    """For an array parent: the number of children running, as ``(from time, count)`` steps."""

    @property
    def start(self) -> float | None:
        return self.segments[0].start if self.segments else None

    @property
    def end(self) -> float | None:
        return max(s.end for s in self.segments) if self.segments else None

    @property
    def compute_environments(self) -> list[tuple[str, str]]:
        """``(CE, capacity type)`` pairs the lane ran or started on, in order, once each."""
        seen: list[tuple[str, str]] = []
        for s in self.segments:
            pair = (s.compute_environment, s.capacity_type)
            if s.span is not Span.WAITING and s.compute_environment and pair not in seen:
                seen.append(pair)
        for child in self.children:
            for pair in child.compute_environments:
                if pair not in seen:
                    seen.append(pair)
        return seen

    def seconds(self, span: Span) -> float:
        return sum(s.seconds for s in self.segments if s.span is span)


@dataclass(frozen=True, slots=True)
class Timeline:
    """Lanes over one stretch of time (``start`` to ``end``, epoch seconds)."""

    start: float
    end: float
    now: float
    lanes: tuple[Lane, ...]
    title: str = ""

    def all_lanes(self) -> list[Lane]:
        """Every lane, each array parent followed by its drawn children."""
        out: list[Lane] = []
        for lane in self.lanes:
            out.append(lane)
            out.extend(lane.children)
        return out


# --------------------------------------------------------------------------- segments


def _detail(a: Attempt) -> str:
    parts = []
    if a.exit_code is not None:
        parts.append(f"exit {a.exit_code}")
    if a.reason and a.reason not in ("Completed",):
        parts.append(a.reason)
    if a.node:
        parts.append(f"on {a.node}")
    return ", ".join(parts)


def _outcome(
    a: Attempt, last: bool, phase: Phase, counts: tuple[int, int] | None, terminated: bool
) -> Outcome:
    if not a.ended:
        return Outcome.ONGOING
    if last and terminated:
        return Outcome.FAILED  # stopped by spec.terminate, not by its node
    if a.interrupted:
        return Outcome.INTERRUPTED
    if last and phase is Phase.SUCCEEDED:
        return Outcome.SUCCEEDED
    if last and phase is Phase.FAILED:
        return Outcome.FAILED
    if a.exit_code == 0 and last:
        return Outcome.SUCCEEDED
    if a.interrupted is None and counts is not None:
        failures, interruptions = counts
        if interruptions == 0:
            return Outcome.RETRIED
        if failures == 0:
            return Outcome.INTERRUPTED
        return Outcome.ENDED
    return Outcome.RETRIED


def segments_of(
    created: float | None,
    attempts: Sequence[Attempt],
    phase: Phase,
    stopped: float | None,
    now: float,
    counts: tuple[int, int] | None = None,
    terminated: bool = False,
) -> tuple[Segment, ...]:
    """Pure: waiting, starting and running segments of one job (or child) from its attempts.

    Waiting runs from ``created`` (or the end of the previous attempt) to the next admission;
    starting from the admission to the container's start; running to the attempt's end
    (``now`` while it runs). A job that is still waiting gets a waiting segment to ``now``;
    one that ended without running (a failed dependency, terminated in the queue) one to its
    ``stopped`` time. ``counts`` (failures, interruptions) classifies earlier attempts whose
    pods are gone (array children); ``terminated``: the job ended by ``spec.terminate``, so its
    last attempt was stopped, not interrupted.
    """
    out: list[Segment] = []
    t = created
    live = [a for a in attempts if a.admitted is not None or a.started is not None]
    for i, a in enumerate(live):
        last = i == len(live) - 1
        admitted = a.admitted if a.admitted is not None else a.started
        assert admitted is not None
        if t is not None and admitted > t:
            out.append(Segment(Span.WAITING, t, admitted))
        end = a.stopped if a.stopped is not None else (now if not a.ended else admitted)
        if a.started is not None and not a.ended:
            end = max(end, now)
        if a.ended and last and stopped is not None and a.stopped is None:
            end = stopped
        outcome = _outcome(a, last, phase, counts, terminated)
        base = Segment(
            Span.STARTING,
            admitted,
            admitted,
            attempt=a.number,
            compute_environment=a.ce,
            capacity_type=a.capacity_type,
            node=a.node,
        )
        if a.started is not None and a.started >= admitted:
            if a.started > admitted:
                out.append(replace(base, end=a.started))
            out.append(
                replace(
                    base,
                    span=Span.RUNNING,
                    start=a.started,
                    end=max(end, a.started),
                    outcome=outcome,
                    detail=_detail(a),
                )
            )
        else:
            out.append(replace(base, end=max(end, admitted), outcome=outcome, detail=_detail(a)))
        t = max(end, admitted)
    if t is None:
        return tuple(out)
    live_attempt = bool(live) and not live[-1].ended
    if not phase.terminal and not live_attempt:
        out.append(Segment(Span.WAITING, t, max(t, now)))
    elif phase.terminal and not live:
        end = stopped if stopped is not None else t
        out.append(
            Segment(
                Span.WAITING,
                t,
                max(t, end),
                outcome=Outcome.FAILED if phase is Phase.FAILED else Outcome.SUCCEEDED,
            )
        )
    return tuple(out)


# --------------------------------------------------------------------------- lanes


def _counts(segments: Sequence[Segment]) -> tuple[int, int, int]:
    ends = [s.outcome for s in segments if s.outcome is not None and s.attempt is not None]
    return (
        len(ends),
        sum(1 for o in ends if o in (Outcome.RETRIED, Outcome.ENDED)),
        sum(1 for o in ends if o is Outcome.INTERRUPTED),
    )


def _uid(job: Mapping[str, Any]) -> str:
    return str((job.get("metadata") or {}).get("uid") or "")


def job_lane(
    job: Mapping[str, Any],
    k8s_jobs: Sequence[Mapping[str, Any]] = (),
    pods: Sequence[Mapping[str, Any]] = (),
    now: float = 0.0,
) -> Lane:
    """Pure: the lane of a job that is not an array (its own Jobs and pods, any order)."""
    st, spec = status_of(job), job.get("spec") or {}
    meta = job.get("metadata") or {}
    phase = phase_of(job)
    created = parse_time(st.get("createdAt")) or created_at(job)
    attempts = collect(list(st.get("attempts") or []), k8s_jobs, pods, None)
    terminated = phase is Phase.FAILED and st.get("reason") == Reason.TERMINATED.value
    segments = segments_of(
        created, attempts, phase, parse_time(st.get("stoppedAt")), now, terminated=terminated
    )
    n, retries, interruptions = _counts(segments)
    cost = st.get("cost")
    return Lane(
        key=f"{meta.get('namespace', '')}/{meta.get('name', '')}",
        label=str(meta.get("name", "")),
        queue=str(spec.get("jobQueue", "")),
        phase=phase,
        reason=str(st.get("reason") or ""),
        segments=segments,
        attempts=max(n, len(st.get("attempts") or [])),
        retries=retries,
        interruptions=interruptions,
        cost=float(cost) if isinstance(cost, int | float) else None,
    )


def _running_steps(children: Iterable[Lane]) -> tuple[tuple[float, int], ...]:
    deltas: dict[float, int] = defaultdict(int)
    for child in children:
        for s in child.segments:
            if s.span is Span.RUNNING and s.end > s.start:
                deltas[s.start] += 1
                deltas[s.end] -= 1
    steps, level = [], 0
    for t in sorted(deltas):
        level += deltas[t]
        steps.append((t, level))
    return tuple(steps)


def _phase_from(attempts: Sequence[Attempt]) -> Phase:
    """A child without a record yet: its phase as its last attempt tells."""
    if not attempts:
        return Phase.RUNNABLE
    last = attempts[-1]
    if not last.ended:
        return Phase.RUNNING if last.started is not None else Phase.STARTING
    if not last.interrupted and last.exit_code == 0:
        return Phase.SUCCEEDED
    return Phase.RUNNABLE  # failed or interrupted: the retry strategy decides next


def array_lane(
    job: Mapping[str, Any],
    rows: Sequence[ChildRow] = (),
    k8s_jobs: Sequence[Mapping[str, Any]] = (),
    pods: Sequence[Mapping[str, Any]] = (),
    now: float = 0.0,
    children_limit: int = DEFAULT_CHILDREN,
) -> Lane:
    """Pure: an array parent's lane with its children's lanes (the first ``children_limit``
    of them drawn, by index; the rest counted). A child's attempts come from the Jobs and
    pods labelled with its index, its final phase and counts from its record row."""
    st, spec = status_of(job), job.get("spec") or {}
    meta = job.get("metadata") or {}
    ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    phase = phase_of(job)
    created = parse_time(st.get("createdAt")) or created_at(job)
    size = as_int((spec.get("arrayProperties") or {}).get("size")) or 0
    by_index_jobs: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    by_index_pods: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for obj, into in [(j, by_index_jobs) for j in k8s_jobs] + [(p, by_index_pods) for p in pods]:
        key = attempt_key(obj)
        if key is not None and key[0] is not None:
            into[key[0]].append(obj)
    row_of = {r.index: r for r in rows}
    children: list[Lane] = []
    totals = [0, 0, 0]
    for index in range(size):
        row = row_of.get(index)
        if row is None and index not in by_index_jobs and index not in by_index_pods:
            continue
        counts = (row.failures, row.interruptions) if row is not None else None
        attempts = collect([], by_index_jobs.get(index, []), by_index_pods.get(index, []), index)
        child_phase = row.phase if row is not None else _phase_from(attempts)
        if phase.terminal and not child_phase.terminal:
            child_phase = phase  # a terminal parent never shows waiting children
        stopped = max((a.stopped for a in attempts if a.stopped is not None), default=None)
        segs = segments_of(created, attempts, child_phase, stopped, now, counts)
        n, retries, interruptions = _counts(segs)
        if row is not None:
            n, interruptions = max(n, row.attempts), max(interruptions, row.interruptions)
        totals = [totals[0] + n, totals[1] + retries, totals[2] + interruptions]
        children.append(
            Lane(
                key=f"{ns}/{name}:{index}",
                label=f"{name}[{index}]",
                queue=str(spec.get("jobQueue", "")),
                phase=child_phase,
                reason=(row.reason if row is not None else "") or "",
                segments=segs,
                attempts=n,
                retries=retries,
                interruptions=interruptions,
            )
        )
    stopped = parse_time(st.get("stoppedAt"))
    end = stopped if stopped is not None and phase.terminal else now
    child_ends = [c.end for c in children if c.end is not None]
    if child_ends and phase.terminal:
        end = max([end, *child_ends]) if stopped is None else end
    first_start = min(
        (s.start for c in children for s in c.segments if s.span is not Span.WAITING),
        default=None,
    )
    own: list[Segment] = []
    if created is not None:
        if first_start is not None and first_start > created:
            own.append(Segment(Span.WAITING, created, first_start))
        begin = first_start if first_start is not None else created
        span = Span.RUNNING if first_start is not None else Span.WAITING
        outcome = (
            Outcome.SUCCEEDED
            if phase is Phase.SUCCEEDED
            else Outcome.FAILED
            if phase is Phase.FAILED
            else Outcome.ONGOING
        )
        own.append(Segment(span, begin, max(begin, end), outcome=outcome))
    cost = st.get("cost")
    return Lane(
        key=f"{ns}/{name}",
        label=name,
        queue=str(spec.get("jobQueue", "")),
        phase=phase,
        reason=str(st.get("reason") or ""),
        segments=tuple(own),
        attempts=totals[0],
        retries=totals[1],
        interruptions=totals[2],
        cost=float(cost) if isinstance(cost, int | float) else None,
        array_size=size,
        children=tuple(children[: max(0, children_limit)]),
        hidden_children=max(0, len(children) - max(0, children_limit)),
        running=_running_steps(children),
    )


# --------------------------------------------------------------------------- the timeline


def rows_by_job(configmaps: Iterable[Mapping[str, Any]]) -> dict[str, list[ChildRow]]:
    """Pure: the child records of each array (by BatchJob uid, else name) from its ConfigMaps."""
    out: dict[str, list[ChildRow]] = defaultdict(list)
    for cm in configmaps:
        labels = labels_of(cm)
        owner = next(
            (
                str(o.get("uid"))
                for o in (cm.get("metadata") or {}).get("ownerReferences") or []
                if o.get("kind") == "BatchJob" and o.get("uid")
            ),
            None,
        )
        key = owner or str(labels.get(L.BATCHJOB, ""))
        out[key].extend(parse_rows(str((cm.get("data") or {}).get(DATA_KEY, ""))))
    for rows in out.values():
        rows.sort(key=lambda r: r.index)
    return dict(out)


@dataclass(frozen=True)
class Sources:
    """What a timeline is built from (each list in any order; all but ``jobs`` optional)."""

    jobs: Sequence[Mapping[str, Any]]
    k8s_jobs: Sequence[Mapping[str, Any]] = ()
    pods: Sequence[Mapping[str, Any]] = ()
    configmaps: Sequence[Mapping[str, Any]] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


def build_timeline(
    sources: Sources,
    now: float,
    *,
    children_limit: int = DEFAULT_CHILDREN,
    title: str = "",
) -> Timeline:
    """Pure: the timeline of ``sources.jobs`` (sorted by creation, then name) at ``now``."""
    jobs_by_uid: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    pods_by_uid: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for obj in sources.k8s_jobs:
        jobs_by_uid[str(labels_of(obj).get(L.BATCHJOB_UID, ""))].append(obj)
    for obj in sources.pods:
        pods_by_uid[str(labels_of(obj).get(L.BATCHJOB_UID, ""))].append(obj)
    records = rows_by_job(sources.configmaps)
    lanes: list[Lane] = []
    for job in sorted(sources.jobs, key=lambda j: (created_at(j) or 0.0, name_of(j))):
        uid = _uid(job)
        if (job.get("spec") or {}).get("arrayProperties"):
            rows = records.get(uid) or records.get(name_of(job)) or []
            lanes.append(
                array_lane(
                    job,
                    rows,
                    jobs_by_uid.get(uid, []),
                    pods_by_uid.get(uid, []),
                    now,
                    children_limit,
                )
            )
        else:
            lanes.append(job_lane(job, jobs_by_uid.get(uid, []), pods_by_uid.get(uid, []), now))
    starts = [s.start for lane in lanes for s in lane.segments]
    ends = [s.end for lane in lanes for s in lane.segments]
    start = min(starts, default=now)
    end = max([*ends, start + 1.0])
    return Timeline(start=start, end=end, now=now, lanes=tuple(lanes), title=title)


def summary(timeline: Timeline) -> dict[str, Any]:
    """Pure: a JSON-ready account of the timeline (``-o json``; the console's data)."""

    def seg(s: Segment) -> dict[str, Any]:
        out: dict[str, Any] = {"span": s.span.value, "start": s.start, "end": s.end}
        for key, value in (
            ("attempt", s.attempt),
            ("computeEnvironment", s.compute_environment),
            ("capacityType", s.capacity_type),
            ("node", s.node),
            ("outcome", s.outcome.value if s.outcome else None),
            ("detail", s.detail),
        ):
            if value not in (None, ""):
                out[key] = value
        return out

    def lane(x: Lane) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": x.key,
            "label": x.label,
            "queue": x.queue,
            "phase": x.phase.value,
            "reason": x.reason,
            "attempts": x.attempts,
            "retries": x.retries,
            "interruptions": x.interruptions,
            "waitingSeconds": x.seconds(Span.WAITING),
            "runningSeconds": x.seconds(Span.RUNNING),
            "segments": [seg(s) for s in x.segments],
        }
        if x.array_size is not None:
            out.update(
                arraySize=x.array_size,
                hiddenChildren=x.hidden_children,
                children=[lane(c) for c in x.children],
            )
        return out

    return {
        "title": timeline.title,
        "start": timeline.start,
        "end": timeline.end,
        "now": timeline.now,
        "lanes": [lane(x) for x in timeline.lanes],
    }


__all__ = [
    "DEFAULT_CHILDREN",
    "Lane",
    "Outcome",
    "Segment",
    "Sources",
    "Span",
    "Timeline",
    "array_lane",
    "build_timeline",
    "job_lane",
    "rows_by_job",
    "segments_of",
    "summary",
]
