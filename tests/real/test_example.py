"""examples/real-node/ on the real node, and the report the demo prints from it."""

from __future__ import annotations

import pytest
from tests.real.conftest import Real

from kubatch.local import chart, realjobs

pytestmark = pytest.mark.timeout(300)


def test_the_real_node_example_runs_and_reports_what_really_happened(
    real: Real, operator: chart.Installed, namespace: str
) -> None:
    realjobs.apply_example(real.state, namespace)
    for name in ("real-hello", "real-exit-3", "real-oom"):
        real.wait_phase(namespace, name)
    lines = sorted(realjobs.report(real.state, namespace))
    assert len(lines) == 3, lines
    exit3, hello, oom = lines
    assert exit3 == '[real] real-exit-3: Failed (exit 3 Error) — logs: "exiting with 3"', exit3
    assert hello.startswith("[real] real-hello: Succeeded array "), hello
    assert '"succeeded":3' in hello, hello
    assert '— logs: "hello from a real container (index ' in hello, hello
    assert oom == '[real] real-oom: Failed (exit 137 OOMKilled) — logs: "allocating"', oom
