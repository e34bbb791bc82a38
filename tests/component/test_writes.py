"""API writes per job on each path (DESIGN: writes are the scarce resource)."""

from __future__ import annotations

from tests.component.conftest import Harness, basic, make_job


async def test_job_admitted_on_arrival_costs_one_create_and_three_patches(h: Harness) -> None:
    basic(h)
    h.apply(make_job("a"))
    await h.cycle()
    st = h.status("a")
    assert (st["phase"], st["reason"]) == ("Starting", "Admitted")
    assert st["jobDefinition"]["name"] == "d"  # the submission record rides with Starting
    assert "queuePosition" not in st
    h.start_pods()
    await h.cycle()
    assert h.status("a")["phase"] == "Running"
    h.finish_pod(h.job_name("a"))
    await h.cycle()
    st = h.status("a")
    assert (st["phase"], st["reason"]) == ("Succeeded", "Succeeded")
    assert st["attempts"][0]["exitCode"] == 0
    assert h.writes("a") == {"create": 1, "status": 3}


async def test_waiting_job_costs_one_more_patch_with_reason_and_position(h: Harness) -> None:
    basic(h, vcpus=1)
    h.apply(make_job("a"), make_job("b"))
    await h.cycle()
    st = h.status("b")
    assert (st["phase"], st["reason"], st["queuePosition"]) == (
        "Runnable",
        "InsufficientCapacity",
        1,
    )
    h.start_pods()
    await h.cycle()
    h.finish_pod(h.job_name("a"))
    await h.cycle()
    assert h.status("b")["phase"] == "Starting"
    assert "queuePosition" not in h.status("b")  # absent once it stops waiting
    h.start_pods()
    await h.cycle()
    h.finish_pod(h.job_name("b"))
    await h.cycle()
    assert h.status("b")["phase"] == "Succeeded"
    assert h.writes("b") == {"create": 1, "status": 4}


async def test_retry_path_writes_and_events(h: Harness) -> None:
    basic(h)
    h.apply(make_job("r", retryStrategy={"attempts": 2}))
    await h.cycle()
    h.start_pods()
    await h.cycle()
    h.finish_pod(h.job_name("r"), exit_code=1)
    await h.cycle()
    st = h.status("r")
    assert st["phase"] == "Starting"  # retried and admitted again in one cycle
    assert [a.get("exitCode") for a in st["attempts"]] == [1, None]
    h.start_pods()
    await h.cycle()
    h.finish_pod(h.job_name("r", attempt=2))
    await h.cycle()
    assert h.status("r")["phase"] == "Succeeded"
    w = h.writes("r")
    assert w["create"] == 2
    assert w["status"] <= 5
    assert w["event"] == 1  # one Retrying event


async def test_array_parent_status_stays_bounded_and_coalesced(h: Harness) -> None:
    basic(h, vcpus=100)
    h.apply(make_job("arr", arrayProperties={"size": 20}))
    await h.cycle()
    st = h.status("arr")
    assert st["arrayStatusSummary"]["starting"] == 20
    assert sum(v for k, v in st["arrayStatusSummary"].items() if k != "size") == 20
    h.start_pods()
    await h.cycle()
    for i in range(20):
        h.finish_pod(h.job_name("arr", index=i))
    await h.cycle()
    st = h.status("arr")
    assert st["phase"] == "Succeeded"
    assert st["arrayStatusSummary"]["succeeded"] == 20
    assert h.writes("arr")["create"] == 20
    assert h.writes("arr")["status"] <= 3
    assert "attempts" not in st  # bounded: children are not listed in the parent


async def test_invalid_job_costs_one_patch_and_one_event(h: Harness) -> None:
    basic(h)
    h.apply(make_job("bad", retryStrategy={"evaluateOnExit": [{"onReason": "a*b",
                                                                "action": "Retry"}]}))  # fmt: skip
    await h.cycle()
    st = h.status("bad")
    assert (st["phase"], st["reason"]) == ("Failed", "InvalidSpec")
    assert "spec.retryStrategy.evaluateOnExit[0].onReason" in st["message"]
    assert h.writes("bad") == {"status": 1, "event": 1}
