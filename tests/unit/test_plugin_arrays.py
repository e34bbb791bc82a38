"""The pure half of the array verbs: child records, paging, one child explained, re-runs."""

from __future__ import annotations

import pytest

from kubatch.api.records import DATA_KEY, HEADER
from kubatch.plugin.arrays import (
    child_rows,
    children_table,
    explain_child,
    filter_rows,
    rerun_body,
    rerun_name,
    split_child,
)
from kubatch.plugin.views import PluginError


def chunk(*rows: str) -> dict[str, object]:
    return {"data": {DATA_KEY: "\n".join([HEADER, *rows]) + "\n"}}


CMS = [
    chunk("1000\tFailed\t2\t2\t0\t9\tError\tn2\tce\tbad input"),
    chunk(
        "0\tSucceeded\t1\t0\t0\t0\tCompleted\tn1\tce\t",
        "1\tRunnable\t1\t0\t1\t\t\t\t\t",
        "garbage line",
    ),
]


def test_rows_from_every_chunk_in_index_order() -> None:
    rows = child_rows(CMS)
    assert [r["index"] for r in rows] == [0, 1, 1000]
    assert rows[2]["exitCode"] == 9
    assert rows[1]["exitCode"] is None
    assert rows[1]["interruptions"] == 1


def test_filter_and_page() -> None:
    rows = child_rows(CMS)
    page, matched = filter_rows(rows, ["failed"], 0, 10)
    assert ([r["index"] for r in page], matched) == ([1000], 1)
    page, matched = filter_rows(rows, None, 1, 1)
    assert ([r["index"] for r in page], matched) == ([1], 3)
    table = children_table(rows)
    assert "1000    Failed      2          9" in table


def test_split_child() -> None:
    assert split_child("big:7") == ("big", 7)
    assert split_child("big") == ("big", None)
    assert split_child("a:b") == ("a:b", None)


JOB = {
    "metadata": {"name": "big", "namespace": "ns"},
    "spec": {"jobQueue": "q", "jobDefinition": "d", "parameters": {"x": "1"},
             "arrayProperties": {"size": 2000, "parallelism": 100},
             "dependsOn": [{"jobName": "prep"}]},
    "status": {"phase": "Running", "reason": "Running", "message": "children running"},
}  # fmt: skip


def test_explain_one_child() -> None:
    rows = {r["index"]: r for r in child_rows(CMS)}
    text = explain_child(JOB, rows[1000], 1000)
    assert "Phase:         Failed" in text
    assert "Last exit:     9 Error" in text
    assert "Message:       bad input" in text
    assert "Why:           waits to be admitted" in explain_child(JOB, rows[1], 1)
    with pytest.raises(PluginError, match="outside the array"):
        explain_child(JOB, None, 2000)


def test_rerun_keeps_what_the_job_was_and_only_the_indices() -> None:
    body = rerun_body(JOB, [1999, 7], "big-rerun-1")
    spec = body["spec"]
    assert spec["rerunOf"] == {"jobName": "big", "indices": [7, 1999]}
    assert spec["arrayProperties"] == {"size": 2, "parallelism": 100}
    assert spec["parameters"] == {"x": "1"}
    assert "dependsOn" not in spec
    one = rerun_body(JOB, [5], "big-rerun-2")["spec"]
    assert "arrayProperties" not in one  # a single index is a plain job that keeps it
    with pytest.raises(PluginError, match="no failed children"):
        rerun_body(JOB, [], "x")
    assert rerun_name("big", ["big-rerun-1", "other"]) == "big-rerun-2"
