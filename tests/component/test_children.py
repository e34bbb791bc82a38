"""Array children you can see: records outside the parent's status, written coalesced, and
read back after a restart so that no finished child runs again."""

from __future__ import annotations

from kubatch.adapters.kube import CONFIGMAPS, JOBS
from kubatch.api.records import DATA_KEY, parse_rows
from tests.component.conftest import Harness, basic, make_job


def rows(h: Harness, name: str, chunk: int = 0) -> dict[int, dict[str, object]]:
    cm = h.kube.get_object(CONFIGMAPS, f"{name}-children-{chunk}", "ns")
    assert cm is not None, f"no record chunk {chunk} of {name}"
    return {r.index: r.as_dict() for r in parse_rows(cm["data"][DATA_KEY])}


async def test_children_records_are_written_and_bounded_per_chunk(h: Harness) -> None:
    basic(h, vcpus=2000)
    h.apply(make_job("arr", arrayProperties={"size": 1500}))
    await h.cycle()
    h.start_pods(node="n7")
    await h.cycle()
    for i in (3, 1200):
        h.finish_pod(h.job_name("arr", index=i), exit_code=0 if i == 3 else 9)
    await h.cycle(advance=11)  # past the coalescing interval
    first, second = rows(h, "arr", 0), rows(h, "arr", 1)
    assert len(first) == 1000
    assert len(second) == 500
    assert first[3]["phase"] == "Succeeded"
    assert first[3]["exitCode"] == 0
    assert first[3]["node"] == "n7"
    assert second[1200]["phase"] == "Failed"
    assert second[1200]["exitCode"] == 9
    assert first[4]["phase"] == "Running"
    cm = h.kube.get_object(CONFIGMAPS, "arr-children-0", "ns")
    assert cm is not None
    assert cm["metadata"]["ownerReferences"][0]["kind"] == "BatchJob"
    assert len(h.status("arr")) < 20  # the parent's status holds counts, not children


async def test_child_record_writes_are_coalesced(h: Harness) -> None:
    basic(h, vcpus=100)
    h.apply(make_job("arr", arrayProperties={"size": 50}))
    await h.cycle()
    h.start_pods()
    for i in range(50):
        await h.cycle(advance=0.2)
        h.finish_pod(h.job_name("arr", index=i))
    await h.cycle(advance=0.2)
    writes = [w for w in h.kube.writes if w.resource == "configmaps"]
    assert h.status("arr")["phase"] == "Succeeded"
    assert 1 <= len(writes) <= 4  # 51 cycles, 50 endings: a handful of writes
    assert all(r["phase"] == "Succeeded" for r in rows(h, "arr").values())


async def test_restart_after_retention_does_not_rerun_finished_children(h: Harness) -> None:
    basic(h, vcpus=100)
    h.apply(make_job("arr", arrayProperties={"size": 6}))
    await h.cycle()
    h.start_pods()
    await h.cycle()
    for i in range(4):
        h.finish_pod(h.job_name("arr", index=i), exit_code=0 if i else 2)
    await h.cycle(advance=11)
    assert rows(h, "arr")[0]["phase"] == "Failed"
    await h.stop()
    for i in range(4):  # retention deleted the finished children's Jobs (and pods)
        h.kube.remove(JOBS, h.job_name("arr", index=i), "ns")
    await h.restart()
    await h.cycle(2)
    creates = [w for w in h.kube.writes if w.resource == "jobs" and w.verb == "create"]
    assert len(creates) == 6  # none of them run again, the two running ones not duplicated
    for i in (4, 5):
        h.finish_pod(h.job_name("arr", index=i))
    await h.cycle()
    st = h.status("arr")
    assert (st["phase"], st["message"]) == ("Failed", "1 of 6 children failed: 0")


async def test_restart_keeps_child_retry_counts(h: Harness) -> None:
    basic(h, vcpus=100)
    h.apply(make_job("arr", arrayProperties={"size": 2}, retryStrategy={"attempts": 2}))
    await h.cycle()
    h.start_pods()
    await h.cycle()
    h.finish_pod(h.job_name("arr", index=0), exit_code=1)  # first attempt of child 0 fails
    await h.cycle(advance=11)
    await h.cycle(advance=11)
    assert rows(h, "arr")[0]["attempts"] == 2
    await h.restart()
    await h.cycle()
    h.start_pods()
    await h.cycle()
    h.finish_pod(h.job_name("arr", index=0, attempt=2), exit_code=1)  # the last attempt
    h.finish_pod(h.job_name("arr", index=1))
    await h.cycle()
    st = h.status("arr")
    assert st["phase"] == "Failed", st  # not retried a third time after the restart
    creates = [w for w in h.kube.writes if w.resource == "jobs" and w.verb == "create"]
    assert len(creates) == 3


async def test_deleting_the_array_forgets_its_records(h: Harness) -> None:
    basic(h, vcpus=100)
    h.apply(make_job("arr", arrayProperties={"size": 3}))
    await h.cycle(advance=11)
    await h.cycle(advance=11)
    assert h.kube.get_object(CONFIGMAPS, "arr-children-0", "ns") is not None
    h.delete("BatchJob", "arr")
    assert "ns/arr" not in h.op.children.logs
    assert h.kube.get_object(CONFIGMAPS, "arr-children-0", "ns") is None  # owned: collected


async def test_a_rerun_runs_exactly_the_given_indices_as_themselves(h: Harness) -> None:
    basic(h, vcpus=100)
    h.apply(make_job("again", arrayProperties={"size": 2},
                     rerunOf={"jobName": "arr", "indices": [7, 812]}))  # fmt: skip
    h.apply(make_job("one", rerunOf={"jobName": "arr", "indices": [9999]}))
    await h.cycle()
    env = {}
    for j in h.k8s_jobs():
        name = j["metadata"]["labels"]["kubatch.io/batchjob"]
        vars_ = {
            e["name"]: e["value"] for e in j["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        env[(name, vars_["AWS_BATCH_JOB_ARRAY_INDEX"])] = vars_["KUBATCH_RERUN_OF"]
    assert env == {("again", "7"): "arr", ("again", "812"): "arr", ("one", "9999"): "arr"}


async def test_a_rerun_must_match_its_array_size(h: Harness) -> None:
    basic(h)
    h.apply(make_job("bad", arrayProperties={"size": 3},
                     rerunOf={"jobName": "arr", "indices": [1, 2]}))  # fmt: skip
    await h.cycle()
    st = h.status("bad")
    assert (st["phase"], st["reason"]) == ("Failed", "InvalidSpec")
    assert "spec.arrayProperties.size: must equal the number of indices re-run (2)" in st["message"]
