"""Issue #11 "any input, any order" on the real plane: each of its five problems, one file of the
four kinds applied in every order, poison objects through two restarts, and what the webhook
refuses at ``kubectl apply`` time.

Each test builds its own compute environments and queues (named after its namespace).
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from tests.e2e.conftest import Stack
from tests.e2e.factories import API, make_ce, make_definition, make_job, make_queue

from kubatch.api import labels as L
from kubatch.api.enums import CapacityType
from kubatch.core.catalogue import DEFAULT
from kubatch.devkit.promtext import parse_metrics, sample
from kubatch.sim.nodes import NodeSpec, build_node

pytestmark = pytest.mark.timeout(300)

JsonDict = dict[str, Any]
POISON = {"attempts": 2, "evaluateOnExit": [{"onStatusReason": "Host*EC2", "action": "RETRY"}]}


def status(obj: JsonDict | None) -> JsonDict:
    st: JsonDict = (obj or {}).get("status") or {}
    return st


def condition(obj: JsonDict | None, ctype: str) -> JsonDict:
    for c in status(obj).get("conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return {}


def handler_errors(stack: Stack) -> float:
    return sample(parse_metrics(stack.metrics()), "kubatch_handler_errors_total")


def operator_log_is_clean(stack: Stack) -> None:
    text = stack.processes.operator.log.read_text(errors="replace")
    bad = [line for line in text.splitlines()
           if "Traceback" in line or "failed; the object is skipped" in line
           or "undeclared API call" in line or "scheduler cycle failed" in line]  # fmt: skip
    assert not bad, "\n".join(bad[:20])


# --------------------------------------------------------------------------- problem 1


@pytest.mark.timeout(420)
def test_poison_objects_of_every_kind_survive_two_restarts_and_others_keep_flowing(
    stack: Stack, namespace: str
) -> None:
    """Problem 1: bad objects of every kind, applied with the webhook off (as objects that
    predate it), never stop the operator: other tenants' jobs run before, between and after
    two SIGKILL restarts; each bad object is reported; no handler error."""
    ns = namespace
    ce, q = f"{ns}-ce", f"{ns}-q"
    stack.apply([make_ce(ce, max_vcpus=8), make_queue(q, [ce])])
    stack.apply([make_definition("ok", duration=0.5, cpu="500m")], ns)
    bad_rule = {"onReason": "OOM*Killed", "action": "Exit"}
    poison_def = make_definition("poison-def", retry={"attempts": 2, "evaluateOnExit": [bad_rule]})
    with stack.webhook_off():
        stack.apply(
            [
                {**make_ce(f"{ns}-bad-ce"), "spec": {"type": "Managed", "computeResources": {
                    "minvCpus": 8, "maxvCpus": 4}}},
                make_queue(f"{ns}-bad-q", [ce, ce]),
            ]
        )  # fmt: skip
        stack.apply(
            [poison_def, make_job("poison", q, "ok", retryStrategy=POISON),
             make_job("on-poison-def", q, "poison-def"), make_job("before", q, "ok")],
            ns,
        )  # fmt: skip
        assert stack.wait_phase(ns, "before")["status"]["phase"] == "Succeeded"
        for round_ in (1, 2):
            stack.kill_operator()
            stack.apply([make_job(f"while-down-{round_}", q, "ok")], ns)
            stack.start_operator()
            stack.processes.wait_operator(timeout=60)
            stack.apply([make_job(f"after-{round_}", q, "ok")], ns)
    for name in ("while-down-1", "after-1", "while-down-2", "after-2"):
        assert stack.wait_phase(ns, name)["status"]["phase"] == "Succeeded", name
    st = status(stack.wait_phase(ns, "poison"))
    assert (st["phase"], st["reason"]) == ("Failed", "InvalidSpec")
    assert "spec.retryStrategy.evaluateOnExit[0].onStatusReason" in st["message"]
    waiting = status(stack.get("batchjob", "on-poison-def", ns))
    assert (waiting["phase"], waiting["reason"]) == ("Submitted", "JobDefinitionNotFound")
    assert "is invalid" in waiting["message"]

    def invalid(kind: str, name: str, where: str | None = None) -> bool:
        ready = condition(stack.get(kind, name, where), "Ready")
        return ready.get("status") == "False" and ready.get("reason") == "InvalidSpec"

    stack.wait("the bad definition, queue and pool reported", lambda: invalid(
        "jobdefinition", "poison-def", ns) and invalid("jobqueue", f"{ns}-bad-q") and invalid(
        "computeenvironment", f"{ns}-bad-ce"), timeout=60)  # fmt: skip

    # The loop runs: cycles keep being counted; nothing raised out of a handler or a cycle.
    def cycles() -> float:
        return sample(parse_metrics(stack.metrics()), "kubatch_scheduler_cycles_total")

    before = cycles()
    stack.wait("more scheduler cycles", lambda: cycles() > before, timeout=10)
    assert handler_errors(stack) == 0
    operator_log_is_clean(stack)
    # Fixing the definition lets its job run: it was waiting, not failed.
    stack.apply([make_definition("poison-def", duration=0.5, cpu="500m")], ns)
    assert stack.wait_phase(ns, "on-poison-def")["status"]["phase"] == "Succeeded"
    for kind, name in (("computeenvironment", f"{ns}-bad-ce"), ("jobqueue", f"{ns}-bad-q")):
        stack.kubectl("delete", kind, name, "--wait=false")


# --------------------------------------------------------------------------- problem 2


ORDERS = list(itertools.permutations(["ComputeEnvironment", "JobQueue", "JobDefinition",
                                      "BatchJob"]))  # fmt: skip


@pytest.mark.timeout(400)
def test_one_file_of_the_four_kinds_in_every_order_ends_succeeded(stack: Stack) -> None:
    """Problem 2: one ``kubectl apply -f`` of a file holding a JobDefinition, a JobQueue, a
    ComputeEnvironment and a BatchJob, in each of the 24 orders (six start with the job), ends
    Succeeded every time. Each order gets its own namespace, pool and queue."""
    run = uuid.uuid4().hex[:6]
    namespaces = []
    try:
        for i, order in enumerate(ORDERS):
            ns = f"order-{run}-{i:02d}"
            namespaces.append(ns)
            stack.kubectl("create", "namespace", ns)
            ce, q = f"{ns}-ce", f"{ns}-q"
            docs = {
                "ComputeEnvironment": make_ce(ce, max_vcpus=2, instance_types=("m5.large",)),
                "JobQueue": make_queue(q, [ce]),
                "JobDefinition": {**make_definition("step", duration=0.5, cpu="500m"),
                                  "metadata": {"name": "step", "namespace": ns}},
                "BatchJob": {**make_job("one", q, "step"),
                             "metadata": {"name": "one", "namespace": ns}},
            }  # fmt: skip
            path = stack.workdir / f"{ns}.yaml"
            path.write_text(yaml.safe_dump_all([docs[k] for k in order]))
            out = stack.kubectl("apply", "-f", str(path))
            assert out.stdout.count("created") == 4, out.stdout
        failures = []
        for i, ns in enumerate(namespaces):
            st = status(stack.wait_phase(ns, "one", timeout=180))
            if st.get("phase") != "Succeeded":
                failures.append(f"{'-'.join(ORDERS[i])}: {st.get('phase')} {st.get('reason')}")
        assert not failures, failures
        assert handler_errors(stack) == 0
    finally:
        for ns in namespaces:
            stack.kubectl("delete", "namespace", ns, "--wait=false", check=False)
            stack.kubectl("delete", "jobqueue", f"{ns}-q", "--wait=false", check=False)
            stack.kubectl("delete", "computeenvironment", f"{ns}-ce", "--wait=false", check=False)


def test_a_job_waits_submitted_for_what_it_names_and_runs_when_it_appears(
    stack: Stack, namespace: str
) -> None:
    """Problem 2 (and 5: ``Submitted`` is written): a job applied before its definition and its
    queue waits in Submitted, saying what it waits for; a queue naming a pool not yet applied
    is Ready=False; the job runs the moment everything exists."""
    ns = namespace
    ce, q = f"{ns}-ce", f"{ns}-q"
    out = stack.kubectl("apply", "-f", "-", input=json.dumps(make_job("early", q, "later")),
                        namespace=ns)  # fmt: skip
    assert "does not exist (yet)" in out.stderr, "the webhook warns, it does not refuse"

    def reason_is(want: str) -> Any:
        st = status(stack.get("batchjob", "early", ns))
        return st if (st.get("phase"), st.get("reason")) == ("Submitted", want) else None

    st = stack.wait("Submitted/JobDefinitionNotFound", lambda: reason_is("JobDefinitionNotFound"))
    assert "'later'" in st["message"]
    stack.apply([make_definition("later", duration=0.5, cpu="500m")], ns)
    stack.wait("Submitted/JobQueueNotFound", lambda: reason_is("JobQueueNotFound"))
    stack.apply([make_queue(q, [ce])])
    stack.wait("the queue Ready=False: its pool does not exist yet", lambda: condition(
        stack.get("jobqueue", q), "Ready").get("status") == "False")  # fmt: skip
    time.sleep(1.0)
    assert status(stack.get("batchjob", "early", ns)).get("phase") not in ("Failed", "Succeeded")
    stack.apply([make_ce(ce)])
    assert stack.wait_phase(ns, "early")["status"]["phase"] == "Succeeded"
    stack.wait("the queue Ready", lambda: condition(stack.get("jobqueue", q), "Ready").get(
        "status") == "True")  # fmt: skip


# --------------------------------------------------------------------------- problems 3 and 5


def unmanaged_node(name: str, ce: str, taint: bool) -> JsonDict:
    """A node of an Unmanaged pool the way a real cluster has them: an instance type label and
    no price annotation (kubatch's simulator adopts it and runs its pods)."""
    itype = DEFAULT.get("m5.large")
    assert itype is not None
    spec = NodeSpec(name=name, compute_environment=ce, instance_type=itype.name,
                    capacity_type=CapacityType.ON_DEMAND, vcpus=itype.vcpus,
                    price_per_hour=0.0, created_at=time.time(), managed=False)  # fmt: skip
    node = build_node(spec, itype, time.time())
    node["metadata"]["annotations"].pop(L.PRICE_PER_HOUR, None)
    if taint:
        node["spec"]["taints"] = [{"key": "example.com/maintenance", "effect": "NoSchedule"}]
    return node


@pytest.fixture
def node_name(namespace: str, stack: Stack) -> Iterator[str]:
    name = f"{namespace}-own-1"
    yield name
    stack.kubectl("delete", "node", name, "--wait=false", check=False)


@pytest.mark.timeout(360)
def test_fit_by_every_resource_unmanaged_pools_cost_and_timeout_from_the_attempts_start(
    stack: Stack, namespace: str, node_name: str
) -> None:
    """Problem 3: an Unmanaged pool without computeResources runs jobs on its nodes and, with
    none yet, makes them wait; a Managed pool limited to m5.large fails at once what no m5.large
    holds (vCPUs or memory). Problem 5: pods carry node affinity to the pool's instance types;
    cost comes from the catalogue on a node without a price annotation; the attempt timeout
    counts from the attempt's start, not from admission; queuePosition is 1-based and absent
    when not waiting."""
    ns = namespace
    own, small, cap = f"{ns}-own", f"{ns}-small", f"{ns}-cap"
    q_own, q_small, q_cap = f"{own}-q", f"{small}-q", f"{cap}-q"
    stack.apply([
        {"apiVersion": API, "kind": "ComputeEnvironment", "metadata": {"name": own},
         "spec": {"type": "Unmanaged"}},
        make_ce(small, max_vcpus=64, instance_types=("m5.large",)),
        make_ce(cap, max_vcpus=2, instance_types=("m5.large",)),
        make_queue(q_own, [own]), make_queue(q_small, [small]), make_queue(q_cap, [cap]),
    ])  # fmt: skip
    stack.apply([
        make_definition("quick", duration=5, cpu="1", memory="1Gi", timeout=60),
        make_definition("wide", cpu="32", memory="8Gi"),
        make_definition("deep", cpu="1", memory="600Gi"),
        make_definition("slow", duration=20, cpu="2", memory="1Gi"),
        make_definition("long", duration=45, cpu="2", memory="1Gi"),
        make_job("early", q_own, "quick"),
        make_job("wide", q_small, "wide"), make_job("deep", q_small, "deep"),
    ], ns)  # fmt: skip
    # A Managed pool of m5.large (2 vCPU, 8 GiB): neither fits, whatever maxvCpus says.
    for name, what in (("wide", "32 vCPU > 2"), ("deep", "600Gi memory > 8Gi")):
        st = status(stack.wait_phase(ns, name, timeout=60))
        assert (st["phase"], st["reason"]) == ("Failed", "NoComputeEnvironmentCanFit"), st
        assert what in st["message"], st["message"]
    # An Unmanaged pool with no node yet: the job waits, it does not fail.
    time.sleep(2)
    st = status(stack.get("batchjob", "early", ns))
    assert st["phase"] == "Runnable", st
    assert "queuePosition" in st
    assert st["queuePosition"] == 1
    # Its node arrives, with a taint the job does not tolerate: admitted (the node counts),
    # its pod waits for the node — time that is not the attempt's.
    stack.kubectl("apply", "-f", "-", input=json.dumps(unmanaged_node(node_name, own, taint=True)))
    stack.wait("early admitted", lambda: status(stack.get("batchjob", "early", ns)).get(
        "phase") == "Starting")  # fmt: skip
    admitted = time.monotonic()
    # Meanwhile: queue positions on a pool capped at 2 vCPUs (one 2-vCPU job runs, two wait).
    stack.apply([make_job(f"s{i}", q_cap, "long" if i == 0 else "slow") for i in range(3)], ns)
    stack.wait("s0 running", lambda: status(stack.get("batchjob", "s0", ns)).get(
        "phase") == "Running", timeout=60)  # fmt: skip

    def positions() -> Any:
        got = [status(stack.get("batchjob", f"s{i}", ns)).get("queuePosition") for i in (1, 2)]
        return got if got == [1, 2] else None

    # A position estimated at submission is made exact at the next refresh (every 30 s): s0
    # runs longer than that, so one refresh falls while s1 and s2 wait behind it alone.
    stack.wait("queue positions 1 and 2", positions, timeout=40)
    assert "queuePosition" not in status(stack.get("batchjob", "s0", ns))
    jobs = stack.list("jobs", ns, "-l", "kubatch.io/batchjob=s0")
    affinity = jobs[0]["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    terms = affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    exprs = {e["key"]: e for e in terms[0]["matchExpressions"]}
    assert exprs["node.kubernetes.io/instance-type"]["values"] == ["m5.large"]
    # 65 s after admission — more than the 60 s timeout — the untainted node lets it run.
    time.sleep(max(0.0, admitted + 65 - time.monotonic()))
    st = status(stack.get("batchjob", "early", ns))
    assert st["phase"] == "Starting", f"the wait for a node is not the attempt's time: {st}"
    stack.kubectl("apply", "-f", "-", input=json.dumps(unmanaged_node(node_name, own, taint=False)))
    st = status(stack.wait_phase(ns, "early", timeout=90))
    assert st["phase"] == "Succeeded", st
    (attempt,) = st["attempts"]
    assert attempt["nodeName"] == node_name
    # Cost from the catalogue (m5.large on demand): the node has no price annotation.
    assert attempt["cost"] > 0, attempt
    assert st["cost"] > 0
    for i in range(3):
        assert stack.wait_phase(ns, f"s{i}", timeout=120)["status"]["phase"] == "Succeeded"
    assert handler_errors(stack) == 0


# --------------------------------------------------------------------------- problem 4


def test_immutable_edits_are_refused_at_apply_time_or_ignored_and_said(
    stack: Stack, namespace: str
) -> None:
    """Problem 4: changing spec.jobQueue of a waiting job is refused by ``kubectl apply``
    naming the field; with the webhook off it is ignored with a Warning Event and a condition,
    no queue count goes negative, and the job still runs through its own queue."""
    ns = namespace
    a, b = f"{ns}-a", f"{ns}-b"
    stack.apply([make_ce(a, max_vcpus=2, instance_types=("m5.large",)), make_ce(b),
                 make_queue(f"{a}-q", [a]), make_queue(f"{b}-q", [b])])  # fmt: skip
    qa = f"{a}-q"
    stack.apply([make_definition("long", duration=8, cpu="2"), make_job("blocker", qa, "long"),
                 make_job("w", qa, "long")], ns)  # fmt: skip
    stack.wait("w waits", lambda: status(stack.get("batchjob", "w", ns)).get("phase") == "Runnable")
    moved = make_job("w", f"{b}-q", "long")
    out = stack.kubectl("apply", "-f", "-", input=json.dumps(moved), namespace=ns, check=False)
    assert out.returncode != 0
    assert (
        'The BatchJob "w" is invalid: spec.jobQueue: cannot change after submission' in out.stderr
    )
    glob = make_job("globbed", f"{a}-q", "long", retryStrategy=POISON)
    out = stack.kubectl("apply", "-f", "-", input=json.dumps(glob), namespace=ns, check=False)
    assert out.returncode != 0
    assert "spec.retryStrategy.evaluateOnExit[0].onStatusReason: '*' is only allowed" in out.stderr
    with stack.webhook_off():
        stack.kubectl("apply", "-f", "-", input=json.dumps(moved), namespace=ns)

        def said() -> Any:
            ignored = condition(stack.get("batchjob", "w", ns), "SpecChangeIgnored")
            return ignored if ignored.get("status") == "True" else None

        ignored = stack.wait("SpecChangeIgnored", said)
        assert "spec.jobQueue cannot change" in ignored["message"]
    events = stack.list("events", ns, "--field-selector", "involvedObject.name=w")
    assert any(e["reason"] == "ImmutableFieldChanged" and e["type"] == "Warning" for e in events)
    st = status(stack.wait_phase(ns, "w", timeout=120))
    assert st["phase"] == "Succeeded"
    assert st["computeEnvironment"] == a, "admitted through its own queue's pool"
    for q in (f"{a}-q", f"{b}-q"):
        counts = status(stack.get("jobqueue", q)).get("jobCounts") or {}
        assert all(v >= 0 for v in counts.values()), (q, counts)
    assert (status(stack.get("jobqueue", f"{b}-q")).get("jobCounts") or {}).get("succeeded", 0) == 0


# --------------------------------------------------------------------------- problem 5


@pytest.mark.timeout(300)
def test_the_interruption_budget_is_configurable_per_job(stack: Stack, namespace: str) -> None:
    """Problem 5: the interruption budget (3 by default) is configurable. With
    ``interruptionBudget: 0`` the first spot reclaim moves the job to the next pool of its
    queue (on-demand) at once, without using up its single attempt."""
    ns = namespace
    spot, od, q = f"{ns}-spot", f"{ns}-od", f"{ns}-q"
    stack.apply([make_ce(spot, capacity_type="Spot", max_vcpus=8), make_ce(od, max_vcpus=8),
                 make_queue(q, [spot, od])])  # fmt: skip
    stack.apply([make_definition("long", duration=10, cpu="1", retry={"attempts": 1}),
                 make_job("impatient", q, "long", interruptionBudget=0)], ns)  # fmt: skip

    def running_on_spot() -> bool:
        st = status(stack.get("batchjob", "impatient", ns))
        return st.get("phase") == "Running" and st.get("computeEnvironment") == spot

    stack.wait("the job running on spot", running_on_spot, timeout=60)
    stack.reclaim(spot, 1.0)
    st = status(stack.wait_phase(ns, "impatient", timeout=120))
    assert st["phase"] == "Succeeded", st
    first, last = st["attempts"][0], st["attempts"][-1]
    assert (first["computeEnvironment"], first.get("interrupted")) == (spot, True), first
    assert last["computeEnvironment"] == od, "no interruption retried on spot: budget 0"
    assert len(st["attempts"]) == 2, st["attempts"]
    assert handler_errors(stack) == 0
