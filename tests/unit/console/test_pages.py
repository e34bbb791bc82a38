"""The console's pages: untrusted text is escaped everywhere, links are encoded."""

from __future__ import annotations

from collections import Counter

from tests.unit.console.test_index import bj

from kubatch.console import pages
from kubatch.console.index import Filters, Index

EVIL = '<script>alert("x")</script>'


def test_url_encodes_segments_and_query() -> None:
    assert pages.url("ns", "a/b", "jobs", "<x>", q="a&b", empty="") == (
        "/ns/a%2Fb/jobs/%3Cx%3E?q=a%26b"
    )


def test_the_job_list_escapes_names_queues_and_reasons() -> None:
    ix = Index()
    ix.apply("jobs", "ADDED", bj("a", "j", queue=EVIL, phase="Failed", reason=EVIL))
    html = pages.job_list(ix.query(Filters(), None), Filters(name=EVIL), now=0.0)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    form = pages.filter_form(Filters(name=EVIL), namespaces=["a"], queues=[EVIL], reasons=[EVIL])
    assert "<script>" not in form
    assert 'value="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"' in form


def test_the_overview_escapes_and_counts() -> None:
    queues = {EVIL: {"metadata": {"name": EVIL}, "spec": {"priority": 1},
                     "status": {"spend": {"lastHour": 1.5}}}}  # fmt: skip
    ces = {"ce": {"spec": {"computeResources": {"capacityType": "Spot", "maxvCpus": 8}},
                  "status": {"allocatedvCpus": 2, "desiredvCpus": 4}}}  # fmt: skip
    html = pages.overview(queues, ces, {EVIL: Counter({"Running": 3})})
    assert "<script>" not in html
    assert ">3</a>" in html
    assert "Spot" in html
    assert "$1.50" in html


def test_the_job_page_escapes_messages_dependencies_and_attempts() -> None:
    job = bj("a", "j", phase="Runnable", deps=(EVIL,))
    job["status"].update(
        message=EVIL,
        queuePosition=3,
        attempts=[{"number": 1, "exitCode": 1, "reason": EVIL, "nodeName": EVIL}],
        arrayStatusSummary={"size": 2, "Succeeded": 1},
    )
    why = {"queue": EVIL, "queueFound": False, "computeEnvironments": [{"name": EVIL}]}
    html = pages.job_page(job, why, dependents=[EVIL], children=[{"index": 0, "message": EVIL}],
                          children_chunk=0, children_chunks=1, now=0.0)  # fmt: skip
    assert "<script>" not in html
    assert 'id="position">3<' in html
    assert 'class="exit">1<' in html
    assert "size 2, Succeeded 1" in html
    assert "Terminate" not in html  # read-only unless a token is given
    assert "Terminate" in pages.job_page(job, why, dependents=[], children=None,
                                         children_chunk=0, children_chunks=0, now=0.0,
                                         terminate_token="t")  # fmt: skip


def test_logs_are_text() -> None:
    html = pages.logs_page("a", "j", "j attempt 1 of 1", "/s", [EVIL, "ok"])
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "data-stream" not in html


def test_a_multi_node_job_shows_its_nodes() -> None:
    job = bj("a", "mnp", phase="Running")
    job["status"]["nodes"] = [
        {"index": 0, "main": True, "nodeName": "n0", "podIP": "10.0.0.1", "phase": "Running"},
        {"index": 1, "nodeName": EVIL, "phase": "Running"},
    ]
    html = pages.job_page(job, {}, dependents=[], children=None, children_chunk=0,
                          children_chunks=0, now=0.0)  # fmt: skip
    assert "Nodes of the current attempt" in html
    assert "10.0.0.1" in html
    assert "<script>" not in html
    assert "Nodes of the current attempt" not in pages.job_page(
        bj("a", "single"), {}, dependents=[], children=None, children_chunk=0,
        children_chunks=0, now=0.0)  # fmt: skip
