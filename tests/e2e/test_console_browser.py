"""The web console in a real browser: Debian's headless Chromium driven by Selenium, against
the real local plane with the operator and the simulated pools (the ``stack`` fixture).

One console (``kubatch console --auth proxy --allow-terminate``) serves every test; the
browser says who it is with the auth-proxy headers (set through the DevTools protocol), so
the console impersonates that user and the API server decides what they see. Each page's
screenshot is taken; with ``KUBATCH_CONSOLE_SHOTS=1`` (``make console-shots``) it is written to
docs/console/ (docs/console.md shows them), else to a temporary directory (a test run does
not change the repository's files).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import ROOT, Stack
from tests.e2e.factories import make_ce, make_definition, make_job, make_queue

from kubatch.devkit.process import Child, free_port
from kubatch.devkit.stack import kubatch_argv

pytestmark = pytest.mark.timeout(300)  # chromium + chromium-driver: `make browser`

SHOTS = (
    ROOT / "docs" / "console"
    if os.environ.get("KUBATCH_CONSOLE_SHOTS") == "1"
    else Path(tempfile.gettempdir()) / "kubatch-console-shots"
)
ADMIN = {"X-Forwarded-User": "console-admin", "X-Forwarded-Groups": "system:masters"}
ALICE = {"X-Forwarded-User": "alice"}
MARKUP = '<img id="injected" src="x" onerror="window.injected=1"><script>window.injected=2</script>'
PHASES = ("Submitted", "Pending", "Runnable", "Starting", "Running", "Succeeded", "Failed")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def world(stack: Stack) -> Iterator[dict[str, str]]:
    """Two namespaces: ``a`` (alice may read it) with the jobs under test, ``b`` (she may
    not) with one job; a queue on a 2-vCPU compute environment."""
    tag = uuid.uuid4().hex[:6]
    a, b = f"console-a-{tag}", f"console-b-{tag}"
    ce, q = f"console-ce-{tag}", f"console-q-{tag}"
    for ns in (a, b):
        stack.kubectl("create", "namespace", ns)
    stack.apply([make_ce(ce, max_vcpus=2, instance_types=("m5.large",)), make_queue(q, [ce])])
    small: dict[str, Any] = {"cpu": "250m", "memory": "256Mi"}
    stack.apply(
        [
            make_definition("ok", duration=1, **small),
            make_definition("flaky", duration=1, exit_code=1, retry={"attempts": 2}, **small),
            make_definition("whole", duration=3, cpu="2", memory="1Gi"),
            make_definition("long", duration=12, cpu="2", memory="1Gi"),
            make_definition("talky", duration=6, **small),
            make_job("ok-1", q, "ok"),
            make_job("ok-2", q, "ok"),
            make_job("second", q, "ok", dependsOn=[{"jobName": "ok-1"}]),
            make_job("flaky", q, "flaky"),
            make_job("markup", q, "ok", dependsOn=[{"jobName": MARKUP}]),
            make_job("arr", q, "ok", arrayProperties={"size": 3}),
        ],
        a,
    )
    stack.apply([make_definition("ok", duration=1, **small), make_job("hidden", q, "ok")], b)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "console-reader"},
        "rules": [
            {"apiGroups": ["kubatch.io"], "resources": ["batchjobs", "jobdefinitions"],
             "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["pods", "pods/log", "configmaps"],
             "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch"]},
        ],
    }  # fmt: skip
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "alice-reads"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "console-reader"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}],
    }  # fmt: skip
    stack.apply([role, binding], a)
    for name in ("ok-1", "ok-2", "second", "arr"):
        stack.wait_phase(a, name, ("Succeeded",), timeout=90)
    stack.wait_phase(a, "flaky", ("Failed",), timeout=90)
    stack.wait_phase(b, "hidden", ("Succeeded",), timeout=90)
    yield {"a": a, "b": b, "ce": ce, "q": q}
    for ns in (a, b):
        stack.kubectl("delete", "namespace", ns, "--wait=false", check=False)
    stack.kubectl("delete", "jobqueue", q, "--wait=false", check=False)


@pytest.fixture(scope="module")
def console(stack: Stack, world: dict[str, str]) -> Iterator[str]:
    port = free_port()
    child = Child(
        "console",
        kubatch_argv(
            "console", "--kubeconfig", str(stack.plane.kubeconfig), "--port", str(port),
            "--auth", "proxy", "--allow-terminate",
        ),
        stack.workdir / "console.log",
        cwd=ROOT,
    )  # fmt: skip
    child.start()
    base = f"http://127.0.0.1:{port}"

    def synced() -> bool:
        child.check()
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as r:
                return "jobs" in json.loads(r.read())["synced"]
        except OSError:
            return False

    try:
        stack.wait("the console serves", synced, timeout=30, every=0.3)
        yield base
    finally:
        child.stop()
        assert child.returncode == 0, child.tail()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="kubatch-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "chromium"
    for arg in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1000",
    ):  # fmt: skip
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
    driver.set_page_load_timeout(30)
    driver.execute_cdp_cmd("Network.enable", {})
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def as_user(driver: Any, headers: dict[str, str]) -> None:
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": headers})


def until(what: str, probe: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except Exception as exc:  # a stale element while the page swaps its fragment
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def shot(driver: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def texts(driver: Any, css: str) -> list[str]:
    """The text of every element matching ``css`` (again if a live update swapped them)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    for _ in range(20):
        try:
            return [el.text for el in driver.find_elements(By.CSS_SELECTOR, css)]
        except StaleElementReferenceException:
            time.sleep(0.1)
    raise AssertionError(f"{css}: the elements kept changing")


# --------------------------------------------------------------------------- tests


def test_overview_counts_match_the_cluster(
    stack: Stack, world: dict[str, str], console: str, browser: Any
) -> None:
    as_user(browser, ADMIN)
    browser.get(console + "/")
    q = world["q"]

    def cluster() -> dict[str, int]:
        jobs = stack.list("batchjobs", None, "--all-namespaces")
        c = Counter(
            (j.get("status") or {}).get("phase") or "Submitted"
            for j in jobs
            if j["spec"]["jobQueue"] == q
        )
        return {p: c.get(p, 0) for p in PHASES}

    def shown() -> dict[str, int]:
        from selenium.webdriver.common.by import By

        cells = browser.find_elements(By.CSS_SELECTOR, "a.n")
        return {el.get_attribute("data-ph"): int(el.text) for el in cells
                if el.get_attribute("data-q") == q}  # fmt: skip

    want = cluster()
    assert want["Succeeded"] == 5, want  # ok-1, ok-2, second, arr, hidden
    assert want["Failed"] == 1, want
    until("the overview's counts equal the cluster's", lambda: shown() == want)
    assert world["ce"] in texts(browser, "table.ces td")
    assert "OnDemand" in texts(browser, "table.ces td")
    shot(browser, "overview")


def test_filtering_finds_a_job(world: dict[str, str], console: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    as_user(browser, ADMIN)
    browser.get(console + "/jobs")
    until("the job list", lambda: texts(browser, "#total"))
    Select(browser.find_element(By.ID, "f-namespace")).select_by_value(world["a"])
    browser.find_element(By.ID, "f-name").send_keys("flak")
    browser.find_element(By.ID, "f-go").click()
    until("one job found", lambda: texts(browser, "a.job") == ["flaky"])
    assert texts(browser, "#total") == ["1"]
    browser.get(console + f"/jobs?namespace={world['a']}&phase=Succeeded")
    assert sorted(texts(browser, "a.job")) == ["arr", "ok-1", "ok-2", "second"]
    shot(browser, "jobs")
    browser.find_element("id", "ns-timeline").click()
    until(
        "the namespace's timeline", lambda: browser.find_elements("css selector", ".timeline svg")
    )


def test_a_retried_job_shows_both_attempts_and_exit_codes(
    world: dict[str, str], console: str, browser: Any
) -> None:
    as_user(browser, ADMIN)
    browser.get(console + f"/ns/{world['a']}/jobs/flaky")
    assert texts(browser, "table.attempts tbody td:first-child") == ["1", "2"]
    assert texts(browser, "span.exit") == ["1", "1"]
    assert world["ce"] in texts(browser, "table.why td")
    shot(browser, "job")
    # dependencies, both ways
    browser.get(console + f"/ns/{world['a']}/jobs/ok-1")
    assert texts(browser, "a.dep") == ["second"]
    browser.find_element("css selector", "a.dep").click()
    until("the dependent's page", lambda: texts(browser, "a.dep") == ["ok-1"])
    # the timeline and the log of the first attempt (insight's answers)
    browser.get(console + f"/ns/{world['a']}/jobs/flaky/timeline")
    until("the timeline's picture", lambda: browser.find_elements("css selector", ".timeline svg"))
    shot(browser, "timeline")
    browser.get(console + f"/ns/{world['a']}/jobs/flaky/logs?attempt=1")
    until("the log", lambda: "exit 1" in browser.find_element("id", "log").text)
    assert "AWS_BATCH_JOB_ATTEMPT=1" in browser.find_element("id", "log").text
    shot(browser, "logs")


def test_an_array_shows_its_summary_and_children(
    world: dict[str, str], console: str, browser: Any
) -> None:
    as_user(browser, ADMIN)
    browser.get(console + f"/ns/{world['a']}/jobs/arr")
    assert browser.find_element("id", "array-summary").text == "size 3, succeeded 3"
    assert texts(browser, "table.children tbody td:first-child") == ["0", "1", "2"]
    shot(browser, "array")
    browser.get(console + f"/ns/{world['a']}/jobs/arr/logs?index=2")
    until("child 2's log", lambda: "exit 0" in browser.find_element("id", "log").text)
    assert "AWS_BATCH_JOB_ARRAY_INDEX=2" in browser.find_element("id", "log").text


def test_a_job_page_follows_runnable_to_succeeded_without_reload(
    stack: Stack, world: dict[str, str], console: str, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    a, q = world["a"], world["q"]
    as_user(browser, ADMIN)
    stack.apply([make_job("blocker", q, "long")], a)
    stack.wait("the blocker runs", lambda: (stack.get("batchjob", "blocker", a) or {})
               .get("status", {}).get("phase") in ("Starting", "Running"), timeout=60)  # fmt: skip
    stack.apply([make_job("waiter", q, "whole")], a)
    browser.get(console + f"/ns/{a}/jobs/waiter")
    browser.execute_script("window.kept = 'same page'")

    def phase() -> str:
        return str(browser.find_element(By.ID, "phase").get_attribute("data-phase"))

    until("waiter Runnable", lambda: phase() == "Runnable", timeout=30)
    until("its queue position", lambda: texts(browser, "#position") == ["1"], timeout=15)
    shot(browser, "job-waiting")
    until("waiter Succeeded", lambda: phase() == "Succeeded", timeout=60)
    assert browser.execute_script("return window.kept") == "same page"  # never reloaded
    assert texts(browser, "span.exit") == ["0"]


def test_the_log_of_a_running_attempt_is_followed(
    stack: Stack, world: dict[str, str], console: str, browser: Any
) -> None:
    a = world["a"]
    as_user(browser, ADMIN)
    stack.apply([make_job("talky", world["q"], "talky")], a)

    def running() -> bool:
        bj = stack.get("batchjob", "talky", a) or {}
        return (bj.get("status") or {}).get("phase") == "Running"

    stack.wait("talky runs", running, timeout=60, every=0.2)
    browser.get(console + f"/ns/{a}/jobs/talky/logs")
    assert browser.find_element("id", "log-state").text == "following"
    until("a first line", lambda: "working" in browser.find_element("id", "log").text)
    assert running()  # still running: the page shows the log as it grows
    until("the end", lambda: browser.find_element("id", "log-state").text == "complete", 30)
    assert browser.find_element("id", "log").text.rstrip().endswith("exit 0 Completed")


def test_markup_in_a_name_is_shown_as_text(
    world: dict[str, str], console: str, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    as_user(browser, ADMIN)
    browser.get(console + f"/ns/{world['a']}/jobs/markup")
    assert texts(browser, "a.dep") == [MARKUP]
    assert browser.find_elements(By.ID, "injected") == []
    assert browser.execute_script("return window.injected") is None


def test_a_viewer_sees_only_the_namespaces_they_may_read(
    world: dict[str, str], console: str, browser: Any
) -> None:
    as_user(browser, ALICE)
    browser.get(console + "/jobs")
    names = until("alice's jobs", lambda: texts(browser, "a.job"))
    assert "flaky" in names
    assert "hidden" not in names
    assert {world["a"]} == set(texts(browser, "table.jobs tbody td:first-child"))
    assert world["b"] not in browser.page_source
    browser.get(console + f"/ns/{world['b']}/jobs/hidden")
    assert "may not read" in browser.find_element("id", "error").text
    browser.get(console + f"/ns/{world['a']}/jobs/markup")
    assert browser.find_elements("id", "terminate") == []  # read-only for her


def test_terminate_only_where_rbac_allows(
    stack: Stack, world: dict[str, str], console: str, browser: Any
) -> None:
    as_user(browser, ADMIN)
    browser.get(console + f"/ns/{world['a']}/jobs/markup")
    browser.find_element("id", "terminate").click()
    until("the notice", lambda: "terminate requested" in browser.page_source)
    stack.wait_phase(world["a"], "markup", ("Failed",), timeout=60)


def test_a_bearer_token_viewer_sees_what_the_token_may_read(
    stack: Stack, world: dict[str, str]
) -> None:
    """``--auth token``: the console reads as the request's token (a ServiceAccount's here,
    bound to the reader Role in namespace a only); no token, no page."""
    a = world["a"]
    stack.kubectl("create", "serviceaccount", "viewer", namespace=a)
    stack.kubectl("create", "rolebinding", "viewer-reads", "--role=console-reader",
                  f"--serviceaccount={a}:viewer", namespace=a)  # fmt: skip

    def token() -> str:
        sa = stack.get("serviceaccount", "viewer", a) or {}
        secrets = [s["name"] for s in sa.get("secrets") or []]
        if not secrets:
            return ""
        secret = stack.get("secret", secrets[0], a) or {}
        return base64.b64decode((secret.get("data") or {}).get("token", "")).decode()

    bearer = stack.wait("the viewer's token", token, timeout=30)
    port = free_port()
    child = Child(
        "console-token",
        kubatch_argv("console", "--kubeconfig", str(stack.plane.kubeconfig), "--port",
                     str(port), "--auth", "token"),
        stack.workdir / "console-token.log",
        cwd=ROOT,
    )  # fmt: skip
    child.start()
    base = f"http://127.0.0.1:{port}"

    def get(path: str, auth: str | None) -> tuple[int, str]:
        req = urllib.request.Request(base + path)
        if auth:
            req.add_header("Authorization", f"Bearer {auth}")
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()
        except urllib.error.URLError:
            return 0, ""  # not listening yet

    def listed() -> str:
        code, body = get(f"/jobs?namespace={a}", bearer)
        return body if code == 200 and 'class="job"' in body else ""

    try:
        body = stack.wait("the console answers the token", listed, timeout=30, every=0.3)
        assert ">flaky</a>" in body
        code, body = get("/jobs", bearer)
        assert code == 200
        assert "hidden" not in body  # namespace b: the token may not read it
        code, body = get(f"/ns/{world['b']}/jobs/hidden", bearer)
        assert code == 404
        assert "may not read" in body
        assert get("/", None)[0] == 401
        assert get("/", "not-a-token")[0] == 401  # the API server does not know it
    finally:
        child.stop()
