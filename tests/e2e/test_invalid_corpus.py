"""The invalid-manifest corpus end to end. What the CRD schema accepts but kubatch's semantic
validation rejects is refused at ``kubectl apply`` time by kubatch's admission webhook, with
the field named; with the webhook off (a cluster without it, objects that predate it) it ends
as ``Failed/InvalidSpec`` (BatchJobs) or ``Ready=False/InvalidSpec`` (queues, compute
environments, definitions), with the specific message and a Warning Event; the operator keeps
working for everything else."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from tests.e2e.conftest import Stack
from tests.manifests.corpus import EXAMPLES, load_cases

CASES = [c for c in load_cases() if c.level == "validation"]


def _cond(obj: dict[str, Any] | None, ctype: str) -> dict[str, Any] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return None


EXAMPLE_FILES = ("00-compute-environments.yaml", "10-job-queues.yaml", "20-job-definitions.yaml")


@pytest.mark.timeout(300)
def test_invalid_corpus_is_refused_at_apply_time_naming_the_field(stack: Stack) -> None:
    ns = f"corpus-hook-{uuid.uuid4().hex[:6]}"
    stack.kubectl("create", "namespace", ns)
    try:
        for name in EXAMPLE_FILES:
            stack.kubectl("apply", "-f", str(EXAMPLES / name), namespace=ns)
        failures = []
        for case in CASES:
            out = stack.kubectl("apply", "-f", str(case.path), namespace=ns, check=False)
            if out.returncode == 0:
                failures.append(f"{case.id}: accepted ({out.stdout.strip()})")
            elif f"{case.field}: " not in out.stderr or case.fragment not in out.stderr:
                failures.append(f"{case.id}: {out.stderr.strip()!r} lacks {case.field}")
            elif f'The {case.kind} "{case.name}" is invalid' not in out.stderr:
                failures.append(f"{case.id}: {out.stderr.strip()!r}")
        assert not failures, "\n".join(failures)
        # Nothing refused was stored.
        for case in CASES:
            where = ns if case.kind in ("BatchJob", "JobDefinition") else None
            assert stack.get(case.kind.lower(), case.name, where) is None, case.id
    finally:
        stack.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.mark.timeout(600)
def test_invalid_corpus_end_to_end_without_the_webhook(stack: Stack) -> None:
    ns = f"corpus-e2e-{uuid.uuid4().hex[:6]}"
    stack.kubectl("create", "namespace", ns)
    try:
        for name in EXAMPLE_FILES:
            stack.kubectl("apply", "-f", str(EXAMPLES / name), namespace=ns)
        with stack.webhook_off():
            for case in CASES:
                stack.kubectl("apply", "-f", str(case.path), namespace=ns)
        failures = []
        for case in CASES:
            namespaced = case.kind in ("BatchJob", "JobDefinition")
            where = ns if namespaced else None
            kind = case.kind.lower()

            def reported(kind: str = kind, where: str | None = where, name: str = case.name) -> Any:
                obj = stack.get(kind, name, where)
                if obj is None:
                    return None
                if kind == "batchjob":
                    st = obj.get("status") or {}
                    return obj if st.get("reason") == "InvalidSpec" else None
                cond = _cond(obj, "Ready")
                return obj if cond and cond.get("reason") == "InvalidSpec" else None

            try:
                obj = stack.wait(f"{case.id} reported invalid", reported, timeout=30)
            except AssertionError as exc:
                failures.append(f"{case.id}: {exc}")
                continue
            if case.kind == "BatchJob":
                st = obj["status"]
                text = st.get("message", "")
                if st.get("phase") != "Failed":
                    failures.append(f"{case.id}: phase {st.get('phase')}")
            else:
                text = (_cond(obj, "Ready") or {}).get("message", "")
                stalled = _cond(obj, "Stalled")
                if not stalled or stalled.get("status") != "True":
                    failures.append(f"{case.id}: no Stalled=True condition")
            if case.fragment not in text or case.field not in text:
                failures.append(f"{case.id}: message {text!r} lacks {case.field}: {case.fragment}")
        assert not failures, "\n".join(failures)
        events = stack.list("events", ns)
        invalid_events = {e["involvedObject"]["name"] for e in events
                          if e["reason"] == "InvalidSpec" and e["type"] == "Warning"}  # fmt: skip
        missing = [c.id for c in CASES if c.kind == "BatchJob" and c.name not in invalid_events]
        assert not missing, f"no Warning Event for {missing}"
        # Nothing else was disturbed: a valid job in the same namespace still runs.
        ok = {"apiVersion": "kubatch.io/v1alpha1", "kind": "BatchJob",
              "metadata": {"name": "still-works"},
              "spec": {"jobQueue": "high-priority", "jobDefinition": "step"}}  # fmt: skip
        stack.apply([ok], ns)
        assert stack.wait_phase(ns, "still-works", timeout=120)["status"]["phase"] == "Succeeded"
    finally:
        for case in CASES:
            if case.kind in ("JobQueue", "ComputeEnvironment"):
                stack.kubectl("delete", case.kind.lower(), case.name, "--wait=false", check=False)
        stack.kubectl("delete", "namespace", ns, "--wait=false", check=False)
