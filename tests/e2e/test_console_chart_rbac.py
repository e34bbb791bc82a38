"""The console under exactly the chart's console ClusterRole (``console.enabled=true``).

``helm template`` renders the chart; the console's ServiceAccount, ClusterRole and binding are
applied to the real plane unchanged and ``kubatch console`` runs with that ServiceAccount's
token. With ``auth: none`` every page of a finished job must work (a missing permission shows
as an error page or a 403 in its log); with ``auth: proxy`` it may impersonate, and a user
without rights sees no job while a cluster admin sees them.
"""

from __future__ import annotations

import contextlib
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from tests.e2e.conftest import ROOT, Stack
from tests.e2e.factories import make_ce, make_definition, make_job, make_queue
from tests.e2e.test_chart_rbac import FORBIDDEN, can_i, sa_token, write_kubeconfig

from kubatch.devkit.process import Child, free_port
from kubatch.devkit.stack import kubatch_argv
from kubatch.local.helm import ensure_helm

pytestmark = pytest.mark.timeout(240)
KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")


def render(release: str, namespace: str, *sets: str) -> list[dict[str, Any]]:
    cmd = [str(ensure_helm()), "template", release, str(ROOT / "helm" / "kubatch"),
           "--namespace", namespace, "--set", "console.enabled=true"]  # fmt: skip
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    ours = [d for d in docs if d["kind"] in KINDS and d["metadata"]["name"].endswith("-console")]
    assert sorted(d["kind"] for d in ours) == sorted(KINDS)
    return ours


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except urllib.error.URLError:
        return 0, ""


@contextlib.contextmanager
def console_as_chart(stack: Stack, namespace: str, auth: str) -> Iterator[tuple[str, Child]]:
    release = f"{namespace}-{auth}"
    rbac = render(release, namespace, f"console.auth={auth}")
    sa = next(d for d in rbac if d["kind"] == "ServiceAccount")["metadata"]["name"]
    kubeconfig = stack.workdir / f"{release}-console.kubeconfig"
    stack.apply(rbac)
    child: Child | None = None
    try:
        write_kubeconfig(stack.plane.kubeconfig, sa_token(stack, namespace, sa), kubeconfig)
        assert can_i(stack, kubeconfig, "watch", "batchjobs.kubatch.io", "--all-namespaces")
        assert not can_i(stack, kubeconfig, "get", "secrets", "-n", namespace)
        assert not can_i(stack, kubeconfig, "patch", "batchjobs.kubatch.io", "-n", namespace)
        port = free_port()
        child = Child(
            f"console ({auth})",
            kubatch_argv("console", "--kubeconfig", str(kubeconfig), "--port", str(port),
                         "--auth", auth),
            stack.workdir / f"{release}-console.log", cwd=ROOT,
        )  # fmt: skip
        child.start()
        base = f"http://127.0.0.1:{port}"
        assert child is not None
        c = child

        def synced() -> bool:
            c.check()
            code, body = get(base + "/healthz")
            return code == 200 and '"jobs"' in body

        stack.wait("the console lists the cluster", synced, timeout=30, every=0.3)
        yield base, child
    finally:
        if child is not None:
            child.stop()
        for doc in rbac:
            if doc["kind"] != "ServiceAccount":
                stack.kubectl("delete", doc["kind"].lower(), doc["metadata"]["name"],
                              "--wait=false", check=False)  # fmt: skip


@pytest.fixture
def finished_job(stack: Stack, namespace: str) -> str:
    ce, q = f"{namespace}-ce", f"{namespace}-q"
    stack.apply([make_ce(ce, max_vcpus=4), make_queue(q, [ce])])
    stack.apply(
        [make_definition("ok", duration=1, cpu="250m", memory="256Mi"),
         make_job("done", q, "ok"), make_job("arr", q, "ok", arrayProperties={"size": 2})],
        namespace,
    )  # fmt: skip
    stack.wait_phase(namespace, "done", ("Succeeded",), timeout=90)
    stack.wait_phase(namespace, "arr", ("Succeeded",), timeout=90)
    return namespace


def test_every_page_works_under_the_charts_role(stack: Stack, finished_job: str) -> None:
    ns = finished_job
    with console_as_chart(stack, ns, "none") as (base, child):
        for path in ("/", f"/jobs?namespace={ns}", f"/ns/{ns}/jobs/done",
                     f"/ns/{ns}/jobs/arr", f"/ns/{ns}/jobs/done/timeline",
                     f"/ns/{ns}/timeline"):  # fmt: skip
            code, body = get(base + path)
            assert code == 200, (path, body[:2000])
        code, body = get(base + f"/ns/{ns}/jobs/arr")
        assert body.count('href="/ns/') >= 2  # the children's log links
        code, text = get(base + f"/ns/{ns}/jobs/done/logs?format=text")
        assert code == 200, text
        assert "exit 0 Completed" in text
        code, text = get(base + f"/ns/{ns}/jobs/arr/logs?index=1&format=text")
        assert "AWS_BATCH_JOB_ARRAY_INDEX=1" in text
        assert not FORBIDDEN.search(child.tail(200)), child.tail(200)


def test_proxy_mode_impersonates_under_the_charts_role(stack: Stack, finished_job: str) -> None:
    ns = finished_job
    with console_as_chart(stack, ns, "proxy") as (base, child):
        admin = {"X-Forwarded-User": "someone", "X-Forwarded-Groups": "system:masters"}
        code, body = get(base + f"/jobs?namespace={ns}", admin)
        assert code == 200
        assert ">done</a>" in body
        code, body = get(base + f"/ns/{ns}/jobs/done/logs?format=text", admin)
        assert "exit 0 Completed" in body
        code, body = get(base + f"/jobs?namespace={ns}", {"X-Forwarded-User": "nobody"})
        assert code == 200
        assert ">done</a>" not in body
        code, body = get(base + f"/ns/{ns}/jobs/done", {"X-Forwarded-User": "nobody"})
        assert "may not read" in body
        assert get(base + "/")[0] == 401
        assert child.alive()
