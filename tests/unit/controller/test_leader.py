"""The pure parts of leader election and of the standby's mirror."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubatch.adapters.kube import JOBS, PODS
from kubatch.controller import convert
from kubatch.controller.leader import LeaseRecord, claim, may_take, read_record, record_spec
from kubatch.controller.main import build_parser, settings_from
from kubatch.controller.mirror import Mirror, newer, selected, selector, trim_job, trim_pod
from kubatch.controller.settings import LeaseTimings


def obj(name: str, rv: int | str | None, ns: str = "ns", **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "labels": labels}
    if rv is not None:
        meta["resourceVersion"] = str(rv)
    return {"metadata": meta}


# ---------------------------------------------------------------------- the Lease record


def test_claim_of_a_new_lease_starts_at_zero_transitions() -> None:
    rec = claim(None, "a", 10, 1_800_000_000.5)
    assert rec.holder == "a"
    assert rec.duration == 10
    assert rec.transitions == 0
    assert rec.acquired == rec.renewed == "2027-01-15T08:00:00.500000Z"


def test_renewal_keeps_acquisition_and_transitions_a_takeover_counts_one() -> None:
    held = LeaseRecord("a", 10, "t0", "t1", 3)
    renewed = claim(held, "a", 10, 1_800_000_010)
    assert (renewed.acquired, renewed.transitions) == ("t0", 3)
    assert renewed.renewed != "t1"
    taken = claim(held, "b", 10, 1_800_000_010)
    assert taken.holder == "b"
    assert taken.transitions == 4
    assert taken.acquired == taken.renewed


@pytest.mark.parametrize(
    ("holder", "observed_at", "now", "expected"),
    [
        pytest.param("a", 100.0, 109.9, False, id="another-holder-within-its-duration"),
        pytest.param("a", 100.0, 110.0, True, id="another-holder-silent-for-its-duration"),
        pytest.param("me", 100.0, 100.0, True, id="my-own-lease-after-a-restart"),
        pytest.param("", 100.0, 100.0, True, id="released"),
    ],
)
def test_may_take_measures_expiry_on_the_local_clock(
    holder: str, observed_at: float, now: float, expected: bool
) -> None:
    rec = LeaseRecord(holder, 10, None, None, 1)
    assert may_take(rec, "me", observed_at, now, default=15) is expected


def test_a_record_round_trips_through_a_lease_spec() -> None:
    rec = LeaseRecord("a", 10, "t0", "t1", 2)
    assert read_record({"spec": record_spec(rec)}) == rec
    assert read_record({}) == LeaseRecord("", 0, None, None, 0)
    assert record_spec(LeaseRecord("", 1))["holderIdentity"] is None, "a release empties it"


@pytest.mark.parametrize(
    ("timings", "message"),
    [
        pytest.param((10, 10, 2), "longer than the renew deadline", id="deadline-not-below"),
        pytest.param((10, 2, 2), "more than one try", id="deadline-one-retry"),
    ],
)
def test_bad_timings_are_refused_with_the_reason(
    timings: tuple[float, float, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        LeaseTimings(*timings)


def test_command_line_election_flags() -> None:
    args = build_parser().parse_args(["--identity", "op-a", "--lease-duration", "15",
                                      "--renew-deadline", "10", "--leader-election-namespace",
                                      "ops"])  # fmt: skip
    s = settings_from(args)
    assert s.identity == "op-a"
    assert s.election.enabled
    assert s.election.namespace == "ops"
    assert (s.election.timings.duration, s.election.timings.renew_deadline) == (15, 10)
    off = settings_from(build_parser().parse_args(["--no-leader-elect"]))
    assert not off.election.enabled
    with pytest.raises(SystemExit, match="must be longer than the renew deadline"):
        settings_from(build_parser().parse_args(["--lease-duration", "5"]))


# ---------------------------------------------------------------------- the mirror


def test_newer_compares_resource_versions_as_numbers() -> None:
    assert newer(obj("x", 10), obj("x", 9))
    assert not newer(obj("x", 9), obj("x", 10))
    assert newer(obj("x", 10), obj("x", 10)), "the same version again (a relist) is kept"
    assert newer(obj("x", None), obj("x", 10)), "not comparable: the incoming one wins"


def test_an_older_copy_never_replaces_a_newer_one() -> None:
    m = Mirror()
    m.put(PODS, obj("p", 7))
    m.put(PODS, obj("p", 5))  # a list taken before the event
    [got] = _sync_list(m, PODS)
    assert got["metadata"]["resourceVersion"] == "7"


def test_a_deletion_is_not_undone_by_a_listed_copy_older_than_it() -> None:
    m = Mirror()
    m.put(PODS, obj("p", 5))
    m.delete(PODS, obj("p", 8))
    m.fill(PODS, [obj("p", 5)])  # a list taken before the deletion
    assert _sync_list(m, PODS) == []
    m.put(PODS, obj("p", 9))  # re-created with the same name
    assert len(_sync_list(m, PODS)) == 1


def test_a_complete_list_replaces_its_scope_only() -> None:
    m = Mirror()
    m.put(JOBS, obj("gone", 1, ns="a", owner="kubatch"))
    m.put(JOBS, obj("other-ns", 1, ns="b", owner="kubatch"))
    m.put(JOBS, obj("not-selected", 1, ns="a"))
    m.replace(JOBS, [obj("new", 3, ns="a", owner="kubatch")], namespace="a", labels="owner")
    names = sorted(o["metadata"]["name"] for o in _sync_list(m, JOBS))
    assert names == ["new", "not-selected", "other-ns"]
    assert m.synced([JOBS])
    assert not m.synced([JOBS, PODS])


def test_managed_fields_are_dropped() -> None:
    m = Mirror()
    body = obj("p", 1)
    body["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    m.put(PODS, body)
    [got] = _sync_list(m, PODS)
    assert "managedFields" not in got["metadata"]
    assert "managedFields" in body["metadata"], "the caller's object is not changed"


def _full_pod(phase: str, exit_code: int) -> dict[str, Any]:
    return {
        "metadata": {"name": "bj-1-abc", "namespace": "ns", "resourceVersion": "42",
                     "labels": {"kubatch.io/batchjob": "bj", "kubatch.io/attempt": "2",
                                "kubatch.io/batchjob-uid": "u1", "job-name": "bj-1"},
                     "managedFields": [{"manager": "kubelet"}],
                     "ownerReferences": [{"kind": "Job", "name": "bj-1"}]},
        "spec": {"nodeName": "node-3", "containers": [{"name": "main", "image": "busybox",
                 "command": ["sh", "-c", "x" * 2000], "env": [{"name": "A", "value": "1"}]}],
                 "volumes": [{"name": "v", "emptyDir": {}}]},
        "status": {"phase": phase, "startTime": "2026-01-01T00:00:00Z",
                   "conditions": [{"type": "DisruptionTarget", "status": "False"}],
                   "containerStatuses": [{"name": "main", "state": {"terminated": {
                       "exitCode": exit_code, "reason": "Error",
                       "startedAt": "2026-01-01T00:00:01Z",
                       "finishedAt": "2026-01-01T00:00:09Z"}}}]},
    }  # fmt: skip


@pytest.mark.parametrize(("phase", "code"), [("Failed", 3), ("Succeeded", 0)])
def test_a_trimmed_pod_reads_as_the_whole_pod(phase: str, code: int) -> None:
    full = _full_pod(phase, code)
    small = trim_pod(full)
    assert "containers" not in small["spec"]
    assert "managedFields" not in small["metadata"]
    assert len(json.dumps(small)) < len(json.dumps(full)) / 2
    assert convert.pod_outcome(small) == convert.pod_outcome(full)
    assert convert.pod_wait(small) == convert.pod_wait(full)
    assert convert.pod_started_at(small) == convert.pod_started_at(full)
    assert convert.attempt_labels(small) == convert.attempt_labels(full) is not None
    assert (small["spec"]["nodeName"], small["status"]) == ("node-3", full["status"])


def test_a_trimmed_job_reads_as_the_whole_job() -> None:
    full = {
        "metadata": {"name": "bj-1", "namespace": "ns", "resourceVersion": "7",
                     "labels": {"kubatch.io/batchjob": "bj", "kubatch.io/attempt": "1"},
                     "managedFields": [{"manager": "kube-controller-manager"}]},
        "spec": {"backoffLimit": 0, "template": _full_pod("Running", 0)},
        "status": {"completionTime": "2026-01-01T00:00:10Z", "succeeded": 1,
                   "conditions": [{"type": "Complete", "status": "True",
                                   "lastTransitionTime": "2026-01-01T00:00:10Z"}]},
    }  # fmt: skip
    small = trim_job(full)
    assert set(small) == {"metadata", "status"}
    assert "managedFields" not in small["metadata"]
    assert convert.job_finished(small) is convert.job_finished(full) is True
    assert convert.job_finished_at(small) == convert.job_finished_at(full)
    assert convert.job_deadline_exceeded(small) == convert.job_deadline_exceeded(full)
    assert convert.attempt_labels(small) == convert.attempt_labels(full) is not None
    assert trim_pod({"metadata": {"name": "p"}}) == {"metadata": {"name": "p"}}, "not yet bound"


def test_selectors_match_like_the_api_server() -> None:
    sel = selector("app=kubatch,kubatch.io/array-record")
    assert selected(obj("x", 1, app="kubatch", **{"kubatch.io/array-record": "true"}), sel)
    assert not selected(obj("x", 1, app="kubatch"), sel)
    assert not selected(obj("x", 1, app="other", **{"kubatch.io/array-record": "1"}), sel)


def _sync_list(m: Mirror, res: Any) -> list[dict[str, Any]]:
    import asyncio

    return asyncio.run(m.list(res))


async def test_the_operator_starts_kopf_again_after_it_gave_up_on_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A restarting API server answers 404 for the CRDs until it serves them, and kopf stops
    on that: the operator starts it again (as a restarted container would), but a clean stop
    ends it."""
    import asyncio

    import kopf

    from kubatch.controller.main import run

    runs: list[str] = []

    async def fake_operator(**_: Any) -> None:
        runs.append("run")
        if len(runs) == 1:
            raise RuntimeError("404 page not found")

    monkeypatch.setattr(kopf, "operator", fake_operator)
    monkeypatch.setattr(asyncio, "sleep", _no_sleep)
    await run(build_parser().parse_args(["--metrics-port", "0", "--no-leader-elect"]))
    assert runs == ["run", "run"]


async def _no_sleep(_: float) -> None:
    return None
