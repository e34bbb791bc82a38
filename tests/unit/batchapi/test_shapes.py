"""The shape checker itself can fail: it catches what botocore would choke on or drop."""

from __future__ import annotations

from tests.unit.batchapi.shapes import check

GOOD = {
    "jobArn": "a",
    "jobName": "n",
    "jobId": "i",
    "jobQueue": "q",
    "status": "RUNNABLE",
    "createdAt": 1,
    "jobDefinition": "d",
}


def test_conforming_answer_passes_and_startedat_is_exempt() -> None:
    assert check("describejobs", 200, {"jobs": [GOOD]}) == []


def test_violations_are_reported() -> None:
    assert any(
        "not one of" in p
        for p in check("describejobs", 200, {"jobs": [{**GOOD, "status": "DONE"}]})
    )
    assert check("describejobs", 200, {"jobs": [{k: v for k, v in GOOD.items() if k != "jobName"}]})
    assert check("describejobs", 200, {"jobs": [{**GOOD, "extra": 1}]})
    assert check("describejobs", 200, {"jobs": [{**GOOD, "createdAt": "2026-01-01"}]})
    assert check("submitjob", 400, {"message": "x"})
    assert check("submitjob", 400, {"__type": "ClientException", "message": "x"}) == []
    assert check("nosuchop", 200, {})
