"""The operator end to end under exactly the chart's roles, with its admission webhook.

``helm template`` renders the repository's chart (with ``webhook.url`` on loopback: the plane
has no Service network); its ServiceAccount, ClusterRole, ClusterRoleBinding, the webhook's
Role and RoleBinding and its ValidatingWebhookConfiguration are applied to the real plane
unchanged; the ServiceAccount's token (the legacy token Secret the 1.20 serviceaccount-token
controller creates) goes into a kubeconfig; a second ``kubatch operator`` runs with that
kubeconfig and the webhook arguments the chart's Deployment passes, checking every call
against the declared table (``--strict-calls``). It makes its own certificate (the Secret, by
the Role), sets the configuration's caBundle and asks SubjectAccessReviews — all under the
chart's grants. The shared operator is stopped for the duration (two operators would fight
over the same queues and compute environments), its webhook configuration removed, and both
come back afterwards. A permission the operator needs and the roles lack shows up as a 403 in
the operator's log, a job that never finishes, a status never written, or a webhook that never
answers.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.e2e.conftest import ROOT, Stack
from tests.e2e.factories import make_ce, make_definition, make_job, make_queue

from kubatch.devkit.polling import eventually
from kubatch.devkit.process import Child, free_port
from kubatch.devkit.stack import PROBE, WEBHOOK_CONFIGURATION, kubatch_argv
from kubatch.local.helm import ensure_helm

pytestmark = pytest.mark.timeout(300)

CHART = ROOT / "helm" / "kubatch"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
# Two Roles (and bindings) in the release namespace: the webhook's Secret, the leader's Lease.
APPLIED = (*RBAC_KINDS, "Role", "RoleBinding", "ValidatingWebhookConfiguration")
FORBIDDEN = re.compile(r"\b403\b|forbidden", re.IGNORECASE)


def poll(what: str, probe: Callable[[], Any], timeout: float, op: Child | None = None) -> Any:
    """``probe()`` until truthy (``Stack.wait`` would fail: the shared operator is stopped)."""

    def alive() -> None:
        if op is not None and not op.alive():
            raise AssertionError(f"the restricted operator died:\n{op.tail(80)}")

    return eventually(probe, what=what, timeout=timeout, check=alive)


def render_chart(release: str, namespace: str, port: int) -> tuple[list[dict[str, Any]], list[str]]:
    """The chart's RBAC objects and webhook configuration exactly as rendered, and the webhook
    arguments its Deployment gives the operator (``webhook.url``: loopback)."""
    proc = subprocess.run(
        [str(ensure_helm()), "template", release, str(CHART), "--namespace", namespace,
         "--set", f"webhook.url=https://127.0.0.1:{port}", "--set", f"webhook.port={port}"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    applied = [d for d in docs if d["kind"] in APPLIED and "batch-api" not in d["metadata"]["name"]]
    assert sorted(d["kind"] for d in applied) == sorted(APPLIED), [d["kind"] for d in docs]
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    hook_args = [a for a in args if a.startswith("--webhook-") and "-addr" not in a]
    return applied, hook_args


def sa_token(stack: Stack, namespace: str, sa: str) -> str:
    """The ServiceAccount's legacy token (read with the admin kubeconfig)."""

    def secret_name() -> str | None:
        obj = stack.get("serviceaccount", sa, namespace) or {}
        names = [s["name"] for s in obj.get("secrets") or [] if "token" in s["name"]]
        return names[0] if names else None

    name: str = poll(f"a token Secret for {namespace}/{sa}", secret_name, 60)

    def token() -> str | None:
        secret = stack.get("secret", name, namespace) or {}
        data = (secret.get("data") or {}).get("token")
        return base64.b64decode(data).decode() if data else None

    value: str = poll(f"the token of {namespace}/{name}", token, 30)
    return value


def write_kubeconfig(admin: Path, token: str, path: Path) -> None:
    """The admin kubeconfig's server and CA, with the ServiceAccount's token as the user."""
    cfg = yaml.safe_load(admin.read_text())
    cluster = cfg["clusters"][0]
    restricted = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "kubatch-sa", "user": {"token": token}}],
        "contexts": [
            {"name": "kubatch-sa", "context": {"cluster": cluster["name"], "user": "kubatch-sa"}}
        ],
        "current-context": "kubatch-sa",
    }
    path.write_text(yaml.safe_dump(restricted))


def can_i(stack: Stack, kubeconfig: Path, *args: str) -> bool:
    proc = subprocess.run(
        [str(stack.plane.kubectl), "--kubeconfig", str(kubeconfig), "auth", "can-i", *args],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return proc.stdout.strip() == "yes"


def webhook_answers(stack: Stack, kubeconfig: Path) -> bool:
    """A server-side dry run of a BatchJob only kubatch's webhook rejects is rejected by it."""
    proc = subprocess.run(
        [str(stack.plane.kubectl), "--kubeconfig", str(kubeconfig), "create", "--dry-run=server",
         "-n", "default", "-f", "-"],
        input=json.dumps(PROBE), capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return proc.returncode != 0 and "onReason" in proc.stderr


@pytest.fixture
def restricted_operator(stack: Stack, namespace: str) -> Iterator[tuple[Child, Path]]:
    """A second operator running with the chart's ServiceAccount, watching ``namespace``, and
    serving the webhook the chart's configuration calls."""
    release = namespace  # unique: ClusterRole and ClusterRoleBinding are cluster-scoped
    port = free_port()
    applied, hook_args = render_chart(release, namespace, port)
    sa = next(d for d in applied if d["kind"] == "ServiceAccount")["metadata"]["name"]
    hook = next(d for d in applied if d["kind"] == "ValidatingWebhookConfiguration")
    kubeconfig = stack.workdir / f"{namespace}-sa.kubeconfig"
    stack.apply([d for d in applied if d is not hook], namespace)
    proc: Child | None = None
    try:
        write_kubeconfig(stack.plane.kubeconfig, sa_token(stack, namespace, sa), kubeconfig)
        # The token really is the ServiceAccount's, bound to the chart's role and nothing more.
        assert can_i(stack, kubeconfig, "create", "jobs.batch", "-n", namespace)
        assert not can_i(stack, kubeconfig, "get", "secrets", "-n", namespace)
        assert not can_i(stack, kubeconfig, "create", "batchjobs.kubatch.io", "-n", namespace)
        env = {k: v for k, v in stack.env.items() if not k.startswith("KUBATCH_METRICS")}
        env["KUBECONFIG"] = str(kubeconfig)
        env["KUBATCH_NAMESPACE"] = namespace  # as the chart's Deployment sets it (the Lease's)
        proc = Child(
            "restricted operator",
            kubatch_argv("operator", "--kubeconfig", str(kubeconfig), "--namespace", namespace,
                         "--metrics-port", str(free_port()), "--strict-calls",
                         "--identity", f"{namespace}-restricted",
                         "--webhook-addr", "127.0.0.1", *hook_args),
            stack.workdir / f"{namespace}-operator.log", env, ROOT,
        )  # fmt: skip
        stack.kill_operator()
        stack.kubectl("delete", "validatingwebhookconfiguration", WEBHOOK_CONFIGURATION,
                      "--ignore-not-found")  # fmt: skip
        stack.apply([hook])
        proc.start()
        poll("the restricted operator's webhook to answer",
             lambda: webhook_answers(stack, stack.plane.kubeconfig), 60, proc)  # fmt: skip
        yield proc, kubeconfig
    finally:
        if proc is not None:
            proc.stop()
        stack.kubectl("delete", "validatingwebhookconfiguration", hook["metadata"]["name"],
                      "--ignore-not-found")  # fmt: skip
        stack.processes.start_operator(wait=True)  # registers its own configuration again
        for doc in applied:
            if doc["kind"] in ("ClusterRole", "ClusterRoleBinding"):  # the rest: the namespace's
                stack.kubectl(
                    "delete", doc["kind"].lower(), doc["metadata"]["name"], "--wait=false",
                    check=False,
                )  # fmt: skip


def test_operator_runs_under_exactly_the_charts_cluster_role(
    stack: Stack, namespace: str, restricted_operator: tuple[Child, Path]
) -> None:
    ns = namespace
    op, _ = restricted_operator
    ce, q = f"{ns}-ce", f"{ns}-q"
    stack.apply([make_ce(ce, max_vcpus=4), make_queue(q, [ce])])
    stack.apply(
        [
            make_definition("ok", duration=1, cpu="500m"),
            make_definition("flaky", duration=0.5, cpu="500m", exit_code=1, retry={"attempts": 2}),
            make_job("first", q, "ok"),
            make_job("second", q, "ok", dependsOn=[{"jobName": "first"}]),
            make_job("frames", q, "ok", arrayProperties={"size": 2}),
            make_job("flaky", q, "flaky"),
        ],
        ns,
    )

    def wait_phase(name: str) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            bj = stack.get("batchjob", name, ns)
            st = (bj or {}).get("status") or {}
            return bj if st.get("phase") in ("Succeeded", "Failed") else None

        try:
            found: dict[str, Any] = poll(f"{ns}/{name} to finish", probe, 120, op)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nrestricted operator log:\n{log()}") from None
        return found

    def log() -> str:
        return op.log.read_text(errors="replace")[-8000:]

    for name in ("first", "second", "frames"):
        st = wait_phase(name)["status"]
        assert st["phase"] == "Succeeded", st
    assert st["arrayStatusSummary"]["succeeded"] == 2
    flaky = wait_phase("flaky")["status"]
    assert flaky["phase"] == "Failed", flaky
    assert len(flaky["attempts"]) == 2, flaky

    # Cluster-scoped status (queue and compute environment) written by the restricted operator.
    def published() -> bool:
        jq = (stack.get("jobqueue", q) or {}).get("status") or {}
        env = (stack.get("computeenvironment", ce) or {}).get("status") or {}
        return (jq.get("jobCounts") or {}).get("succeeded") == 3 and "allocatedvCpus" in env

    poll(f"{q} and {ce} status", published, 60, op)
    # Events the user must notice (the retry, the failure) were posted.
    events = json.loads(stack.kubectl("get", "events", "-o", "json", namespace=ns).stdout)["items"]
    about_flaky = [e for e in events if e["involvedObject"].get("name") == "flaky"]
    assert about_flaky, [e["reason"] for e in events]

    # The webhook, under the same roles: its own certificate in the Secret the Role names, the
    # caBundle of the chart's configuration, a SubjectAccessReview per new BatchJob.
    secret = stack.get("secret", f"{ns}-kubatch-webhook-tls", ns)
    assert secret is not None
    assert secret["type"] == "kubernetes.io/tls"
    vwc = stack.get("validatingwebhookconfiguration", f"{ns}-kubatch")
    assert vwc is not None
    assert vwc["webhooks"][0]["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    rule = {"onStatusReason": "Host*EC2", "action": "RETRY"}
    bad = make_job("glob", q, "ok", retryStrategy={"attempts": 2, "evaluateOnExit": [rule]})
    out = stack.kubectl("apply", "-f", "-", input=json.dumps(bad), namespace=ns, check=False)
    assert out.returncode != 0
    assert "spec.retryStrategy.evaluateOnExit[0].onStatusReason" in out.stderr
    # Who may create BatchJobs but not pods may not submit: BatchJobs are no way around RBAC.
    stack.kubectl("create", "role", "bj-only", "--verb=create,get",
                  "--resource=batchjobs.kubatch.io", namespace=ns)  # fmt: skip
    stack.kubectl("create", "rolebinding", "mallory-bj", "--role=bj-only", "--user=mallory",
                  namespace=ns)  # fmt: skip
    sneaky = make_job("sneaky", q, "ok")
    out = stack.kubectl("apply", "--as=mallory", "-f", "-", input=json.dumps(sneaky),
                        namespace=ns, check=False)  # fmt: skip
    assert out.returncode != 0
    assert f'user "mallory" may not create pods in namespace "{ns}"' in out.stderr, out.stderr
    assert stack.get("batchjob", "sneaky", ns) is None

    assert op.alive(), log()
    text = op.log.read_text(errors="replace")
    denied = [line for line in text.splitlines() if FORBIDDEN.search(line)]
    assert not denied, "\n".join(denied[:20])
    assert "undeclared API call" not in text
