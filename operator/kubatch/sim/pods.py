"""What a simulated kubelet does to a pod: its declared behaviour and the statuses it writes.

Pure: pods are plain dicts as the API server returns them; timestamps are passed in as epoch
seconds. The builders return the body of a JSON merge patch of the pod's ``status``
subresource, shaped like a real kubelet's (conditions, IPs, container statuses with
``containerID``/``imageID``, terminated state with exit code, reason and timestamps).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from kubatch.api import labels as L
from kubatch.timefmt import rfc3339

# Pod annotations (set in a JobDefinition's template) that declare the simulated behaviour.
ANN_DURATION = "sim.kubatch.io/duration"
ANN_EXIT_CODE = "sim.kubatch.io/exit-code"
ANN_EXIT_CODE_BY_INDEX = "sim.kubatch.io/exit-code-by-index"
ANN_EXIT_CODE_BY_ATTEMPT = "sim.kubatch.io/exit-code-by-attempt"
ANN_OOM = "sim.kubatch.io/oom"
INDEX_ENV_VARS = ("AWS_BATCH_JOB_ARRAY_INDEX", "KUBATCH_JOB_ARRAY_INDEX")

DEFAULT_DURATION = 1.0
EXIT_OOM = 137
EXIT_SIGTERM = 143


class PodPhase(StrEnum):
    """``status.phase`` of a Kubernetes pod (what a kubelet writes; not a BatchJob's phase)."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


class TerminationReason(StrEnum):
    """``state.terminated.reason`` of a container, as a kubelet reports it."""

    COMPLETED = "Completed"
    ERROR = "Error"
    OOM_KILLED = "OOMKilled"


DISRUPTION_CONDITION = "DisruptionTarget"
DISRUPTION_REASON = "TerminationByKubelet"
RECLAIM_POD_REASON = "Terminated"


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What the simulated container does: run ``duration`` seconds, then exit."""

    duration: float = DEFAULT_DURATION
    exit_code: int = 0
    oom: bool = False

    @property
    def reason(self) -> TerminationReason:
        if self.oom:
            return TerminationReason.OOM_KILLED
        return TerminationReason.COMPLETED if self.exit_code == 0 else TerminationReason.ERROR


# --- quantities ---------------------------------------------------------------------------------

_BIN = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DEC = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}


def parse_quantity(q: object) -> float:
    """A Kubernetes quantity (``500m``, ``2``, ``1Gi``, ``1e3``) as a float. Pure."""
    if isinstance(q, int | float):
        return float(q)
    s = str(q).strip()
    if s[-2:] in _BIN:
        return float(s[:-2]) * _BIN[s[-2:]]
    if s and s[-1] in _DEC and not s[-1].isdigit():
        return float(s[:-1]) * _DEC[s[-1]]
    return float(s)


@dataclass(frozen=True, slots=True)
class Requests:
    vcpus: float = 0.0
    memory_mib: float = 0.0
    gpus: int = 0


def pod_requests(pod: dict[str, Any]) -> Requests:
    """Sum of the containers' requests (limits where requests are absent), as the scheduler
    sees them (init containers: the max). Pure."""
    spec = pod.get("spec") or {}

    def one(c: dict[str, Any]) -> tuple[float, float, int]:
        res = c.get("resources") or {}
        req = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        cpu = parse_quantity(req["cpu"]) if "cpu" in req else 0.0
        mem = parse_quantity(req["memory"]) / 2**20 if "memory" in req else 0.0
        gpu = int(parse_quantity(req["nvidia.com/gpu"])) if "nvidia.com/gpu" in req else 0
        return cpu, mem, gpu

    cpu = mem = 0.0
    gpu = 0
    for c in spec.get("containers") or []:
        a, b, g = one(c)
        cpu, mem, gpu = cpu + a, mem + b, gpu + g
    for c in spec.get("initContainers") or []:
        a, b, g = one(c)
        cpu, mem, gpu = max(cpu, a), max(mem, b), max(gpu, g)
    return Requests(cpu, mem, gpu)


# --- behaviour ----------------------------------------------------------------------------------


def array_index(pod: dict[str, Any]) -> int | None:
    """The pod's array index: env var of the first container, else label. Pure."""
    containers = (pod.get("spec") or {}).get("containers") or []
    if containers:
        for env in containers[0].get("env") or []:
            if env.get("name") in INDEX_ENV_VARS and "value" in env:
                try:
                    return int(env["value"])
                except (TypeError, ValueError):
                    pass
    label = ((pod.get("metadata") or {}).get("labels") or {}).get(L.ARRAY_INDEX)
    if label is not None:
        try:
            return int(label)
        except ValueError:
            return None
    return None


def parse_exit_codes_by_index(text: str) -> dict[int, int]:
    """``"3=1,7=137"`` → ``{3: 1, 7: 137}``; malformed entries are ignored. Pure."""
    out: dict[int, int] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            continue
        try:
            out[int(key.strip())] = int(value.strip())
        except ValueError:
            continue
    return out


def behaviour_of(pod: dict[str, Any]) -> Behaviour:
    """The behaviour a pod declares in its annotations (defaults: 1 s, exit 0). Pure."""
    ann = (pod.get("metadata") or {}).get("annotations") or {}
    try:
        duration = max(0.0, float(ann.get(ANN_DURATION, DEFAULT_DURATION)))
    except ValueError:
        duration = DEFAULT_DURATION
    try:
        exit_code = int(ann.get(ANN_EXIT_CODE, 0))
    except ValueError:
        exit_code = 1
    by_index = ann.get(ANN_EXIT_CODE_BY_INDEX)
    if by_index:
        idx = array_index(pod)
        codes = parse_exit_codes_by_index(str(by_index))
        if idx is not None and idx in codes:
            exit_code = codes[idx]
    by_attempt = ann.get(ANN_EXIT_CODE_BY_ATTEMPT)
    if by_attempt:
        attempt = attempt_number(pod)
        codes = parse_exit_codes_by_index(str(by_attempt))
        if attempt is not None and attempt in codes:
            exit_code = codes[attempt]
    oom = str(ann.get(ANN_OOM, "")).strip().lower() in ("true", "1", "yes")
    if oom:
        exit_code = EXIT_OOM
    return Behaviour(duration=duration, exit_code=exit_code, oom=oom)


def attempt_number(pod: dict[str, Any]) -> int | None:
    """The pod's attempt number (label ``kubatch.io/attempt``, 1 for the first). Pure."""
    label = ((pod.get("metadata") or {}).get("labels") or {}).get(L.ATTEMPT)
    try:
        return int(label) if label is not None else None
    except ValueError:
        return None


# --- status builders ----------------------------------------------------------------------------


def _digest(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def pod_ip(uid: str) -> str:
    """A stable pod IP in 10.244.0.0/16 derived from the pod's uid. Pure."""
    d = hashlib.blake2s(uid.encode(), digest_size=2).digest()
    return f"10.244.{d[0]}.{max(d[1], 2)}"


def _containers(pod: dict[str, Any], key: str = "containers") -> list[dict[str, Any]]:
    return list((pod.get("spec") or {}).get(key) or [])


def _cond(ctype: str, status: bool, ts: str, reason: str | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {
        "type": ctype,
        "status": "True" if status else "False",
        "lastProbeTime": None,
        "lastTransitionTime": ts,
    }
    if reason:
        c["reason"] = reason
    return c


def _ids(pod: dict[str, Any], c: dict[str, Any]) -> dict[str, str]:
    uid = (pod.get("metadata") or {}).get("uid", "")
    image = str(c.get("image", "busybox"))
    return {
        "image": image,
        "imageID": f"{image.split(':', maxsplit=1)[0]}@sha256:{_digest('image', image)}",
        "containerID": f"containerd://{_digest(uid, c.get('name', ''))}",
    }


def _init_statuses(pod: dict[str, Any], started: str) -> list[dict[str, Any]]:
    return [
        {
            "name": c.get("name", ""),
            **_ids(pod, c),
            "ready": True,
            "restartCount": 0,
            "state": {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": started,
                    "finishedAt": started,
                    "containerID": _ids(pod, c)["containerID"],
                }
            },
        }
        for c in _containers(pod, "initContainers")
    ]


def build_running_status(pod: dict[str, Any], host_ip: str, now: float) -> dict[str, Any]:
    """Status merge patch that makes a bound pod Running, as a kubelet would. Pure."""
    ts = rfc3339(now)
    uid = (pod.get("metadata") or {}).get("uid", "")
    ip = pod_ip(uid)
    status: dict[str, Any] = {
        "phase": PodPhase.RUNNING.value,
        "hostIP": host_ip,
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": ts,
        "conditions": [
            _cond("Initialized", True, ts),
            _cond("Ready", True, ts),
            _cond("ContainersReady", True, ts),
            _cond("PodScheduled", True, ts),
        ],
        "containerStatuses": [
            {
                "name": c.get("name", ""),
                **_ids(pod, c),
                "ready": True,
                "started": True,
                "restartCount": 0,
                "lastState": {},
                "state": {"running": {"startedAt": ts}},
            }
            for c in _containers(pod)
        ],
    }
    inits = _init_statuses(pod, ts)
    if inits:
        status["initContainerStatuses"] = inits
    return status


def _terminated_status(
    pod: dict[str, Any],
    *,
    phase: PodPhase,
    main: tuple[int, TerminationReason],
    started_at: float,
    now: float,
    extra_conditions: list[dict[str, Any]],
) -> dict[str, Any]:
    ts, start = rfc3339(now), rfc3339(started_at)
    reason = "PodCompleted" if phase is PodPhase.SUCCEEDED else "PodFailed"
    statuses = []
    for i, c in enumerate(_containers(pod)):
        code, why = main if i == 0 else (0, TerminationReason.COMPLETED)
        if i > 0 and main[1] is TerminationReason.ERROR and main[0] == EXIT_SIGTERM:
            code, why = EXIT_SIGTERM, TerminationReason.ERROR  # the node took every container
        ids = _ids(pod, c)
        statuses.append(
            {
                "name": c.get("name", ""),
                **ids,
                "ready": False,
                "started": False,
                "restartCount": 0,
                "lastState": {},
                "state": {
                    "terminated": {
                        "exitCode": code,
                        "reason": why.value,
                        "startedAt": start,
                        "finishedAt": ts,
                        "containerID": ids["containerID"],
                    }
                },
            }
        )
    return {
        "phase": phase.value,
        "conditions": [
            _cond("Initialized", True, start),
            _cond("Ready", False, ts, reason),
            _cond("ContainersReady", False, ts, reason),
            _cond("PodScheduled", True, start),
            *extra_conditions,
        ],
        "containerStatuses": statuses,
    }


def build_terminated_status(
    pod: dict[str, Any], behaviour: Behaviour, started_at: float, now: float
) -> dict[str, Any]:
    """Status merge patch for a pod whose main container exited per ``behaviour``. Pure.

    The first container carries the declared exit code; others (sidecars) exit 0. The pod is
    Succeeded when every container exited 0, else Failed.
    """
    phase = PodPhase.SUCCEEDED if behaviour.exit_code == 0 else PodPhase.FAILED
    return _terminated_status(
        pod,
        phase=phase,
        main=(behaviour.exit_code, behaviour.reason),
        started_at=started_at,
        now=now,
        extra_conditions=[],
    )


def build_disrupted_status(
    pod: dict[str, Any], node_name: str, started_at: float | None, now: float
) -> dict[str, Any]:
    """Status merge patch for a pod killed by a spot reclaim of its node. Pure.

    Like a kubelet's graceful node shutdown: phase Failed, reason ``Terminated``, a message
    naming the node, a ``DisruptionTarget`` condition, and every container terminated by
    SIGTERM (exit 143).
    """
    ts = rfc3339(now)
    status = _terminated_status(
        pod,
        phase=PodPhase.FAILED,
        main=(EXIT_SIGTERM, TerminationReason.ERROR),
        started_at=started_at if started_at is not None else now,
        now=now,
        extra_conditions=[_cond(DISRUPTION_CONDITION, True, ts, DISRUPTION_REASON)],
    )
    status["conditions"][-1]["message"] = f"node {node_name} was reclaimed (spot interruption)"
    status["reason"] = RECLAIM_POD_REASON
    status["message"] = (
        f"Pod was terminated in response to imminent shutdown of node {node_name} "
        "(spot capacity reclaimed)"
    )
    return status
