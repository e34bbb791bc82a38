"""Consumable resources (#17) on the real plane: two jobs that need the only unit of a licence
pool run one after the other although the compute environment could run both at once; the
waiting one says which resource it waits for, and the resource's status shows its use."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from tests.e2e.conftest import Stack
from tests.e2e.factories import API, make_ce, make_definition, make_job, make_queue


def status(obj: dict[str, Any] | None) -> dict[str, Any]:
    st: dict[str, Any] = (obj or {}).get("status") or {}
    return st


def phase(stack: Stack, ns: str, name: str) -> str | None:
    return status(stack.get("batchjob", name, ns)).get("phase")


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@pytest.mark.timeout(300)
def test_two_jobs_share_a_licence_pool_of_one_one_after_the_other(
    stack: Stack, namespace: str
) -> None:
    ns = namespace
    ce, q, licence = f"{ns}-ce", f"{ns}-q", f"{ns}-licence"
    stack.apply([
        make_ce(ce, max_vcpus=8),
        make_queue(q, [ce]),
        {"apiVersion": API, "kind": "ConsumableResource", "metadata": {"name": licence},
         "spec": {"totalQuantity": 1, "resourceType": "REPLENISHABLE"}},
    ])  # fmt: skip
    defn = make_definition("solver", duration=6, cpu="1")
    defn["spec"]["consumableResourceProperties"] = {
        "consumableResourceList": [{"consumableResource": licence, "quantity": 1}]
    }
    stack.apply([defn, make_job("first", q, "solver")], ns)
    stack.wait("the first job to start", lambda: phase(stack, ns, "first") == "Running")
    stack.apply([make_job("second", q, "solver")], ns)

    def waits_for_the_licence() -> dict[str, Any] | None:
        st = status(stack.get("batchjob", "second", ns))
        return st if st.get("reason") == "ConsumableResourceUnavailable" else None

    st = stack.wait("the second job to wait for the licence", waits_for_the_licence, timeout=30)
    assert st["phase"] == "Runnable"
    assert licence in st["message"], st["message"]

    def in_use() -> dict[str, Any] | None:
        cr = status(stack.get("consumableresource", licence))
        return cr if cr.get("inUseQuantity") == 1 else None

    cr = stack.wait("the licence's status to show it in use", in_use, timeout=30)
    assert cr["availableQuantity"] == 0

    first = status(stack.wait_phase(ns, "first", timeout=120))
    second = status(stack.wait_phase(ns, "second", timeout=120))
    assert (first["phase"], second["phase"]) == ("Succeeded", "Succeeded")
    # one after the other: the second started only once the first had stopped
    assert ts(second["attempts"][0]["startedAt"]) >= ts(first["attempts"][0]["stoppedAt"])

    def free() -> dict[str, Any] | None:
        cr = status(stack.get("consumableresource", licence))
        return cr if cr.get("inUseQuantity") == 0 else None

    cr = stack.wait("the licence to be free again", free, timeout=30)
    assert cr["availableQuantity"] == 1
    listed = stack.kubectl("get", "batch").stdout  # the kubectl category includes the kind
    assert licence in listed
