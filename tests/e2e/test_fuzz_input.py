"""Issue #11: a Hypothesis fuzz of manifests of the five kinds against the real API server,
with the operator and its admission webhook running.

Every manifest (``tests/e2e/fuzz_manifests.py``: valid objects with up to three mutations) is
created, or merge-patched when its name exists (an UPDATE). What the API server refuses must
be refused cleanly (4xx; a denial of the webhook names the field, never "failed calling
webhook"); every object it accepts gets a status from the operator within seconds (checked
after each batch); ``kubatch_handler_errors_total`` stays 0 and the operator's log holds no
traceback (no error is swallowed to get there: intake counts every unexpected error in that
metric); a control job submitted after the fuzz succeeds.

``KUBATCH_FUZZ_MANIFESTS`` sets the number of manifests (default 1,000, the issue's floor).
The run's summary is written to ``<stack workdir>/fuzz-summary.json`` and printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from tests.e2e.conftest import Stack
from tests.e2e.factories import make_ce, make_definition, make_job, make_queue
from tests.e2e.fuzz_manifests import manifest

from kubatch.adapters.kube import (
    BATCHJOBS,
    COMPUTEENVIRONMENTS,
    CONSUMABLERESOURCES,
    JOBDEFINITIONS,
    JOBQUEUES,
    ApiError,
    Kube,
    Resource,
)
from kubatch.devkit.promtext import parse_metrics, sample

JsonDict = dict[str, Any]
MANIFESTS = int(os.environ.get("KUBATCH_FUZZ_MANIFESTS", "1000"))
BATCH = 100
"""Manifests between two checks that every accepted object has its status."""
STATUS_WITHIN = 30.0
"""Seconds after a batch within which each object it got accepted has a status."""
RESOURCES: dict[str, Resource] = {
    "ComputeEnvironment": COMPUTEENVIRONMENTS,
    "JobQueue": JOBQUEUES,
    "JobDefinition": JOBDEFINITIONS,
    "BatchJob": BATCHJOBS,
    "ConsumableResource": CONSUMABLERESOURCES,
}
FIELD = re.compile(r"\b(spec|metadata)\.[A-Za-z][\w.]*")
Key = tuple[str, str]  # (kind, name)


def has_status(kind: str, obj: JsonDict) -> bool:
    """A BatchJob has a phase; the other kinds have conditions for their current spec."""
    st = obj.get("status") or {}
    if kind == "BatchJob":
        return bool(st.get("phase"))
    generation = (obj.get("metadata") or {}).get("generation")
    return bool(st.get("conditions")) and st.get("observedGeneration") == generation


class Fuzz:
    """Submits manifests through one login and keeps the score."""

    def __init__(self, stack: Stack, prefix: str, namespace: str) -> None:
        self.stack, self.prefix, self.namespace = stack, prefix, namespace
        self.loop = asyncio.new_event_loop()
        self.kube = self.loop.run_until_complete(Kube.from_environment(stack.processes.kubeconfig))
        self.tried = 0
        self.outcomes: Counter[str] = Counter()
        self.by_kind: Counter[str] = Counter()
        self.accepted: dict[Key, float] = {}
        """Objects accepted since the last check -> when."""
        self.last: dict[Key, tuple[str, JsonDict]] = {}
        """Each object's last accepted manifest (and whether it was created or updated)."""
        self.failure: str | None = None
        """Why the run failed (not the current manifest's fault: raised after the fuzz)."""
        self.objects: set[Key] = set()
        self.slowest = 0.0
        self.accepted_by_kind: Counter[str] = Counter()
        self.refused_fields: Counter[str] = Counter()
        """``<kind> <first field named>`` of each refusal (webhook or schema)."""
        self.examples: dict[str, str] = {}
        """The first message of each of them."""

    def close(self) -> None:
        self.loop.run_until_complete(self.kube.close())
        self.loop.close()

    def submit(self, doc: JsonDict) -> None:
        if self.failure:
            return
        kind, name = doc["kind"], doc["metadata"]["name"]
        res, ns = RESOURCES[kind], doc["metadata"].get("namespace")
        self.tried += 1
        self.by_kind[kind] += 1
        key = (kind, name)
        update = key in self.objects
        try:
            if update:
                try:
                    self.loop.run_until_complete(self.kube.patch(res, name, doc, ns))
                except ApiError as exc:
                    if not (exc.not_found and kind == "BatchJob"):
                        raise
                    # Removed since (finished, its queue's retention): a new one.
                    self.objects.discard(key)
                    update = False
                    self.loop.run_until_complete(self.kube.create(res, doc, ns))
            else:
                self.loop.run_until_complete(self.kube.create(res, doc, ns))
        except ApiError as exc:
            self._refused(exc, doc, update)
        else:
            self.outcomes["updated" if update else "created"] += 1
            self.accepted_by_kind[kind] += 1
            self.last[key] = ("updated" if update else "created", doc)
            self.objects.add(key)
            self.accepted[key] = time.monotonic()
        if self.tried % BATCH == 0:
            self.settle()

    def _refused(self, exc: ApiError, doc: JsonDict, update: bool) -> None:
        where = json.dumps(doc)[:1500]
        assert exc.status < 500, f"the API server failed on {where}: {exc}"
        assert "failed calling webhook" not in exc.body, f"the webhook failed on {where}: {exc}"
        if exc.conflict and not update:  # a name of an earlier manifest the server kept
            self.objects.add((doc["kind"], doc["metadata"]["name"]))
            self.outcomes["conflict"] += 1
            return
        message = exc.message
        named = FIELD.search(message)
        if "validate.kubatch.io" in message:
            assert named, f"a denial that names no field: {message}"
            self.outcomes["denied by the webhook"] += 1
        else:
            self.outcomes[f"refused by the API server ({exc.status})"] += 1
        if named:
            field = re.sub(r"[.]\d+", "", named.group(0))
            self.refused_fields[f"{doc['kind']} {field}"] += 1
            self.examples.setdefault(f"{doc['kind']} {field}", message[:300])

    def settle(self) -> None:
        """Until every object accepted since the last call has its status."""
        if not self.accepted:
            return
        start = time.monotonic()
        pending = dict(self.accepted)

        def done() -> bool:
            seen = set()
            for kind, res in RESOURCES.items():
                ns = self.namespace if res.namespaced else None
                for obj in self.loop.run_until_complete(
                    self.kube.list(res, namespace=ns, labels=f"kubatch-fuzz={self.prefix}")
                ):
                    key = (kind, obj["metadata"]["name"])
                    seen.add(key)
                    if key in pending and has_status(kind, obj):
                        pending.pop(key)
            # A finished BatchJob goes once its queue's finishedJobRetentionSeconds has passed
            # (the fuzz sets it to 0 at times); no other kind ever disappears.
            for key in [k for k in pending if k[0] == "BatchJob" and k not in seen]:
                pending.pop(key)
                self.objects.discard(key)
                self.outcomes["BatchJob finished and removed (queue retention)"] += 1
            return not pending

        try:
            self.stack.wait("a status on every accepted object", done,
                            timeout=STATUS_WITHIN, every=0.5)  # fmt: skip
        except AssertionError:
            lines = [f"no status within {STATUS_WITHIN}s on {len(pending)} object(s):"]
            for kind, name in sorted(pending)[:5]:
                how, doc = self.last[(kind, name)]
                res = RESOURCES[kind]
                ns = self.namespace if res.namespaced else None
                try:
                    now_: JsonDict | str = self.loop.run_until_complete(
                        self.kube.get(res, name, ns)
                    )
                except ApiError as exc:
                    now_ = str(exc)
                lines.append(f"{kind} {name} ({how} from {json.dumps(doc)}), now: "
                             f"{json.dumps(now_)[:2000]}")  # fmt: skip
            self.failure = "\n".join(lines)
            return
        now = time.monotonic()
        self.slowest = max(self.slowest, now - min(self.accepted.values()))
        self.accepted.clear()
        assert now - start < STATUS_WITHIN

    def states(self) -> Counter[str]:
        """What the operator says of the fuzz's objects now: a BatchJob's phase and reason,
        the Ready condition's status and reason of the others."""
        out: Counter[str] = Counter()
        for kind, res in RESOURCES.items():
            ns = self.namespace if res.namespaced else None
            for obj in self.loop.run_until_complete(
                self.kube.list(res, namespace=ns, labels=f"kubatch-fuzz={self.prefix}")
            ):
                st = obj.get("status") or {}
                if kind == "BatchJob":
                    out[f"{kind} {st.get('phase')}/{st.get('reason') or '-'}"] += 1
                    continue
                ready = next((c for c in st.get("conditions") or []
                              if c.get("type") == "Ready"), {})  # fmt: skip
                out[f"{kind} Ready={ready.get('status')}/{ready.get('reason') or '-'}"] += 1
        return out

    def summary(self) -> JsonDict:
        return {"manifests": self.tried, "byKind": dict(self.by_kind),
                "outcomes": dict(self.outcomes), "objects": len(self.objects),
                "acceptedByKind": dict(self.accepted_by_kind),
                "slowestStatusSeconds": round(self.slowest, 1),
                "refusedFields": {k: [n, self.examples[k]]
                                  for k, n in self.refused_fields.most_common(15)},
                "states": dict(sorted(self.states().items()))}  # fmt: skip


def handler_errors(stack: Stack) -> float:
    return sample(parse_metrics(stack.metrics()), "kubatch_handler_errors_total")


@pytest.mark.timeout(900)
def test_fuzz_of_manifests_of_the_five_kinds_never_breaks_the_operator(stack: Stack) -> None:
    prefix = f"fz{uuid.uuid4().hex[:5]}"
    ns = prefix
    stack.kubectl("create", "namespace", ns)
    reviews_before = sample(parse_metrics(stack.metrics()), "kubatch_admission_reviews_total")
    fuzz = Fuzz(stack, prefix, ns)

    @settings(max_examples=MANIFESTS, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(manifest(prefix, ns))
    def one(doc: JsonDict) -> None:
        fuzz.submit(doc)

    try:
        one()
        fuzz.settle()
        assert fuzz.failure is None, fuzz.failure
        summary = fuzz.summary()
        (stack.workdir / "fuzz-summary.json").write_text(json.dumps(summary, indent=1))
        print("fuzz summary:", json.dumps(summary))
        assert fuzz.tried >= MANIFESTS
        assert set(fuzz.by_kind) == set(RESOURCES)
        accepted = fuzz.outcomes["created"] + fuzz.outcomes["updated"]
        # The fuzz reaches both sides: many objects get in, many are turned away.
        assert accepted >= MANIFESTS // 5, summary
        assert fuzz.outcomes["denied by the webhook"] >= MANIFESTS // 10, summary
        assert fuzz.slowest < STATUS_WITHIN
        assert handler_errors(stack) == 0
        reviews = sample(parse_metrics(stack.metrics()), "kubatch_admission_reviews_total")
        assert reviews - reviews_before >= fuzz.outcomes["denied by the webhook"]
        log = stack.processes.operator.log.read_text(errors="replace")
        assert "Traceback" not in log, stack.operator_log()
        # A control job submitted after the fuzz runs.
        ce, q = f"{prefix}-control", f"{prefix}-control-q"
        stack.apply([make_ce(ce, max_vcpus=2, instance_types=("m5.large",)), make_queue(q, [ce])])
        stack.apply([make_definition("control", duration=0.5, cpu="500m"),
                     make_job("control", q, "control")], ns)  # fmt: skip
        assert stack.wait_phase(ns, "control")["status"]["phase"] == "Succeeded"
        assert handler_errors(stack) == 0
    finally:
        fuzz.close()
        stack.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        stack.kubectl("delete", "jobqueues,computeenvironments,consumableresources", "-l",
                      f"kubatch-fuzz={prefix}", "--wait=false", check=False)  # fmt: skip
        stack.kubectl("delete", "jobqueue", f"{prefix}-control-q", "--wait=false", check=False)
        stack.kubectl("delete", "computeenvironment", f"{prefix}-control", "--wait=false",
                      check=False)  # fmt: skip
