"""``helm upgrade`` from the previous chart with jobs in flight: the CRDs are updated too, and
no job is lost or run twice.

The previous chart (0.1.x) shipped its CRDs in ``crds/``; Helm installs that folder once and
never upgrades it. Today's chart ships them as templates, so every upgrade applies them; the
one step from 0.1.x is ``--take-ownership`` (Helm adopts the CRDs it did not create), as
documented in docs/helm.md. Runs first in the tier (file order): it installs the previous
chart on the fresh plane; the other modules then reuse the upgraded release.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tests.real.conftest import (
    CHART,
    NOTES,
    Real,
    apply_pool,
    batch_job,
    definition,
    previous_chart,
)

from kubatch.local import chart

CRDS = Path(__file__).resolve().parents[2] / "helm" / "kubatch" / "files" / "crds"

pytestmark = pytest.mark.timeout(900)

JOBS = ("a", "b", "c")


def columns(real: Real) -> list[str]:
    crd = real.get("crd", "batchjobs.kubatch.io")
    assert crd is not None
    return [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]


def test_upgrade_with_jobs_in_flight_updates_crds_and_loses_nothing(
    real: Real, namespace: str
) -> None:
    if real.installed is not None:  # another module ran first: start from scratch
        real.uninstall_everything()
    old = real.install(previous_chart(real.workdir / "kubatch-0.1.0"))
    assert "Message" not in columns(real), "the previous chart's BatchJob CRD is the older one"
    old_pod = real.operator_pod()["metadata"]["uid"]
    apply_pool(real)
    real.apply(
        [
            definition("slow", 'sleep 20; echo "done $AWS_BATCH_JOB_ID"'),
            *(batch_job(name, "slow") for name in JOBS),
            batch_job("arr", "slow", arrayProperties={"size": 2}),
        ],
        namespace=namespace,
    )

    def all_running() -> bool:
        pods = real.list("pods", namespace, "-l", "app.kubernetes.io/managed-by=kubatch")
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        return len(running) == len(JOBS) + 2

    real.wait("every job's container to run", all_running, 120)
    t0 = time.monotonic()
    new = real.install(CHART, take_ownership=True)  # the documented step from 0.1.x
    upgrade_seconds = time.monotonic() - t0
    NOTES.append(f"helm upgrade 0.1.0 -> current with jobs in flight: {upgrade_seconds:.0f}s")

    # the CRDs are today's, now owned by the release (and so upgraded from now on)
    assert "Message" in columns(real)
    for plural in ("batchjobs", "jobqueues", "computeenvironments", "jobdefinitions"):
        crd = real.get("crd", f"{plural}.kubatch.io")
        assert crd is not None
        assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert crd["metadata"]["annotations"]["meta.helm.sh/release-name"] == new.release
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert new.release == old.release
    assert real.operator_pod()["metadata"]["uid"] != old_pod, "a new operator pod (old one first)"

    # every job ends once: one attempt, one Kubernetes Job, one pod, one line of output
    for name in (*JOBS, "arr"):
        bj = real.wait_phase(namespace, name, timeout=180)
        assert bj["status"]["phase"] == "Succeeded", bj["status"]
    for name in JOBS:
        bj = real.get("batchjob", name, namespace)
        assert bj is not None
        assert len(bj["status"]["attempts"]) == 1, bj["status"]["attempts"]
    k8s_jobs = real.list("jobs", namespace, "-l", "app.kubernetes.io/managed-by=kubatch")
    per_job: dict[str, int] = {}
    for job in k8s_jobs:
        key = job["metadata"]["labels"]["kubatch.io/batchjob"]
        per_job[key] = per_job.get(key, 0) + 1
    assert per_job == {"a": 1, "b": 1, "c": 1, "arr": 2}, per_job
    pods = real.list("pods", namespace, "-l", "app.kubernetes.io/managed-by=kubatch")
    assert len(pods) == len(JOBS) + 2
    outputs: list[str] = []
    for pod in pods:
        outputs.append(real.logs(namespace, pod["metadata"]["name"]).strip())
        (cs,) = pod["status"]["containerStatuses"]
        assert cs["restartCount"] == 0
    assert all(o.startswith("done ") for o in outputs), outputs
    assert len(set(outputs)) == len(outputs), outputs  # one run per job (and array child)


def test_the_current_chart_renders_its_crds_as_templates(real: Real) -> None:
    """Why upgrades carry the CRDs: they are part of the release's manifest."""
    installed = real.current()
    out = chart.helm(real.state, "get", "manifest", installed.release, "-n", installed.namespace)
    kinds = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("kind:")]
    names = [line.split(":", 1)[1].strip() for line in out.splitlines()
             if line.startswith("  name:") and line.strip().endswith(".kubatch.io")]  # fmt: skip
    shipped = sorted(p.name.split("_", 1)[1].removesuffix(".yaml") for p in CRDS.glob("*.yaml"))
    assert kinds.count("CustomResourceDefinition") == len(shipped) == 5, kinds
    assert sorted(n.split(".", 1)[0] for n in names) == shipped, names
    assert "Deployment" in kinds
