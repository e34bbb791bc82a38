"""Plain Kubernetes manifests for tests that drive the plane without the operator."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def batch_v1_job(
    name: str,
    node_selector: Mapping[str, str],
    *,
    cpu: str = "100m",
    memory: str = "64Mi",
    annotations: Mapping[str, str] | None = None,
    tolerations: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """A one-pod ``batch/v1`` Job (no retries) whose pod selects nodes by ``node_selector``."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": dict(annotations or {})},
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": dict(node_selector),
                    "tolerations": [dict(t) for t in tolerations],
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox:1.36",
                            "resources": {"requests": {"cpu": cpu, "memory": memory}},
                        }
                    ],
                },
            },
        },
    }
