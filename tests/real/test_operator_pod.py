"""The operator as a user runs it: the chart's pod, under its ServiceAccount, probes, read-only
root filesystem, /metrics scraped from the pod's port, the image built from the Dockerfile."""

from __future__ import annotations

import re

import pytest
import yaml
from tests.real.conftest import QUEUE, Real, batch_job, definition, http_get

from kubatch.devkit.promtext import Samples, parse_metrics, sample
from kubatch.local import chart, images, node

pytestmark = pytest.mark.timeout(600)

TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
FORBIDDEN = re.compile(r"\b403\b|forbidden", re.IGNORECASE)


def exec_in(real: Real, pod: str, namespace: str, *argv: str) -> tuple[int, str]:
    proc = real.kubectl("exec", pod, "--", *argv, namespace=namespace, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_the_image_is_built_from_the_dockerfile_and_never_pulled(
    real: Real, operator: chart.Installed
) -> None:
    assert real.image.repository == images.OPERATOR_REPO
    assert real.image.archive.is_file()
    pod = real.operator_pod()
    (container,) = pod["spec"]["containers"]
    assert container["image"] == real.image.name
    assert container["imagePullPolicy"] == "Never"
    (status,) = pod["status"]["containerStatuses"]
    assert status["image"] == real.image.name
    # the Dockerfile's USER, ENTRYPOINT and venv are what runs
    code, out = exec_in(real, pod["metadata"]["name"], operator.namespace, "id", "-u")
    assert (code, out.strip()) == (0, "10001"), out
    code, out = exec_in(
        real, pod["metadata"]["name"], operator.namespace, "python", "-c",
        "import kubatch, sys; print(sys.prefix, kubatch.__file__)",
    )  # fmt: skip
    assert code == 0, out
    assert out.startswith("/opt/kubatch "), out


def test_it_runs_under_its_service_account_with_no_kubeconfig(
    real: Real, operator: chart.Installed
) -> None:
    pod = real.operator_pod()
    name = pod["metadata"]["name"]
    assert pod["spec"]["serviceAccountName"] == operator.fullname
    assert pod["spec"]["hostNetwork"] is True
    mounts = [m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]]
    assert TOKEN_DIR in mounts, mounts  # mounted by ServiceAccount admission
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert "KUBECONFIG" not in env
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
    code, out = exec_in(real, name, operator.namespace, "sh", "-c", f"ls {TOKEN_DIR}; env")
    assert code == 0, out
    assert "token" in out, out
    assert "ca.crt" in out, out
    assert "KUBECONFIG=" not in out, out
    # the API server sees the operator as its ServiceAccount
    sa = f"system:serviceaccount:{operator.namespace}:{operator.fullname}"
    who = real.kubectl("auth", "can-i", "create", "jobs.batch", f"--as={sa}", "-A", check=False)
    assert who.stdout.strip() == "yes"
    log = real.operator_log()
    denied = [line for line in log.splitlines() if FORBIDDEN.search(line)]
    assert not denied, "\n".join(denied[:10])


def test_probes_pass_and_the_root_filesystem_stays_read_only(
    real: Real, operator: chart.Installed
) -> None:
    pod = real.operator_pod()
    name = pod["metadata"]["name"]
    ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert ready["Ready"] == "True", pod["status"]
    (status,) = pod["status"]["containerStatuses"]
    assert status["ready"] is True
    assert status["started"] is True
    assert status["restartCount"] == 0, status
    probes = pod["spec"]["containers"][0]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert probes[probe]["httpGet"]["path"] == "/healthz", probes[probe]
    code, body = http_get(operator.health_url)  # what the kubelet probes, on the pod's port
    assert code == 200, body
    code, out = exec_in(real, name, operator.namespace, "python", "-c", "open('/probe-write', 'w')")
    assert code != 0, out
    assert "Read-only file system" in out, out
    code, out = exec_in(
        real, name, operator.namespace, "python", "-c", "open('/opt/kubatch/probe', 'w')"
    )
    assert code != 0, out
    assert "Read-only file system" in out, out
    code, out = exec_in(
        real, name, operator.namespace, "sh", "-c", "echo ok > /tmp/probe && cat /tmp/probe"
    )
    assert (code, out.strip()) == (0, "ok"), out


def test_metrics_are_scraped_from_the_pods_port(
    real: Real, operator: chart.Installed, namespace: str
) -> None:
    pod = real.operator_pod()
    ports = {p["name"]: p for p in pod["spec"]["containers"][0]["ports"]}
    assert ports["metrics"]["containerPort"] == operator.metrics_port
    # hostNetwork: the declared ports are the node's, so the scheduler never puts two
    # replicas with the same ports on one node (they would collide)
    assert ports["metrics"]["hostPort"] == operator.metrics_port
    assert ports["health"]["hostPort"] == operator.health_port

    def scrape() -> Samples:
        code, body = http_get(operator.metrics_url)  # the pod's IP and port
        assert code == 200, body
        return parse_metrics(body)

    before = scrape()
    real.apply(
        [
            definition("ok", "true"),
            definition("fails", "exit 4"),
            batch_job("one-ok", "ok"),
            batch_job("one-bad", "fails"),
        ],
        namespace=namespace,
    )
    for name in ("one-ok", "one-bad"):
        real.wait_phase(namespace, name)

    def grew(name: str, **labels: str) -> float:
        return sample(scrape(), name, **labels) - sample(before, name, **labels)

    # what the operator counted is what happened, per queue and phase
    real.wait("the counters", lambda: grew("kubatch_job_completions_total", queue=QUEUE) == 2)
    assert grew("kubatch_job_submissions_total", queue=QUEUE) == 2
    assert grew("kubatch_job_completions_total", queue=QUEUE, phase="Succeeded") == 1
    assert grew("kubatch_job_completions_total", queue=QUEUE, phase="Failed") == 1
    assert grew("kubatch_job_admissions_total", queue=QUEUE) == 2
    assert sample(scrape(), "kubatch_scheduler_cycle_duration_seconds_count") > 0


def test_a_second_replica_waits_instead_of_colliding_on_ports(
    real: Real, operator: chart.Installed
) -> None:
    deploy = f"deploy/{operator.fullname}"
    first = real.operator_pod()["metadata"]["name"]
    real.kubectl("scale", deploy, "--replicas=2", namespace=operator.namespace)
    try:

        def unschedulable() -> str | None:
            for pod in real.list(
                "pods", operator.namespace, "-l", f"app.kubernetes.io/instance={operator.release}"
            ):
                if pod["metadata"]["name"] == first:
                    continue
                for c in pod["status"].get("conditions") or []:
                    if c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable":
                        return str(c.get("message"))
            return None

        message = real.wait("the second replica to be refused by the scheduler", unschedulable)
        assert "free ports" in message, message
    finally:
        real.kubectl("scale", deploy, "--replicas=1", namespace=operator.namespace)
    real.wait("one operator pod again", lambda: len(real.list(
        "pods", operator.namespace, "-l", f"app.kubernetes.io/instance={operator.release}"
    )) == 1)  # fmt: skip
    assert real.operator_pod()["metadata"]["name"] == first
    assert real.operator_pod()["status"]["containerStatuses"][0]["restartCount"] == 0


def test_the_node_is_a_ready_kubelet(real: Real) -> None:
    n = real.get("node", node.NODE_NAME)
    assert n is not None
    info = n["status"]["nodeInfo"]
    assert info["kubeletVersion"] == "v1.20.2"
    assert info["containerRuntimeVersion"].startswith("containerd://1.6"), info
    ready = {c["type"]: c["status"] for c in n["status"]["conditions"]}
    assert ready["Ready"] == "True"
    addresses = {a["type"]: a["address"] for a in n["status"]["addresses"]}
    # a /32 of 198.18.0.0/15 on the loopback interface (the kubelet refuses 127.0.0.1)
    assert real.state.node is not None
    assert addresses["InternalIP"] == real.state.node.ip
    assert addresses["InternalIP"].startswith(("198.18.", "198.19."))
    for key, value in node.NODE_LABELS.items():
        assert n["metadata"]["labels"][key] == value


def test_the_charts_admission_webhook_refuses_a_bad_glob_at_apply_time(
    real: Real, operator: chart.Installed
) -> None:
    """The chart's ValidatingWebhookConfiguration, reached by URL at the node's address (no
    Service network here), with the operator's own certificate: its CA is in the caBundle,
    its Secret exists, and ``kubectl apply`` of a job with a glob in the middle is refused
    naming the field, on a dry run (nothing is stored either way)."""
    vwc = real.get("validatingwebhookconfiguration", operator.fullname)
    assert vwc is not None
    (hook,) = vwc["webhooks"]
    assert hook["failurePolicy"] == "Fail"
    assert hook["clientConfig"]["url"].startswith(f"https://{operator.pod_ip}:")
    assert hook["clientConfig"].get("caBundle"), "the operator put its CA in"
    secret = real.get("secret", f"{operator.fullname}-webhook-tls", operator.namespace)
    assert secret is not None
    assert {"ca.crt", "tls.crt", "tls.key"} <= set(secret["data"])
    bad = batch_job("globbed", "any", retryStrategy={
        "evaluateOnExit": [{"onStatusReason": "Host*EC2", "action": "RETRY"}]})  # fmt: skip
    proc = real.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(bad),
                        namespace="default", check=False)  # fmt: skip
    assert proc.returncode != 0
    # The schema cannot say this: only the webhook refuses it.
    field = "spec.retryStrategy.evaluateOnExit[0].onStatusReason"
    assert f'The BatchJob "globbed" is invalid: {field}: ' in proc.stderr, proc.stderr
    assert "'*' is only allowed at the end" in proc.stderr, proc.stderr
