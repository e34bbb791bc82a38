"""What capacity costs: node prices from the instance catalogue, and an attempt's share.

Pure. A node's price per hour is its own annotation when it has one (simulated pools, or a
user's), else the catalogue's price of its instance type and capacity type. An attempt costs
the node's price x its run hours x the job's share of the node's vCPUs — the figure the
metrics, the job status, budgets and ``kubectl batch plan`` all use.
"""

from __future__ import annotations

from kubatch.core.catalogue import Catalogue


def node_price(
    catalogue: Catalogue, instance_type: str | None, spot: bool, annotated: float | None = None
) -> float:
    """Pure: dollars per hour of one node (0 when neither annotated nor in the catalogue)."""
    if annotated is not None and annotated > 0:
        return annotated
    t = catalogue.get(instance_type or "")
    return t.price(spot) if t is not None else 0.0


def estimate_cost(
    price_per_hour: float, run_seconds: float, job_vcpus: float = 1.0, node_vcpus: float = 1.0
) -> float:
    """Pure: dollars an attempt cost: the node's hourly price x run hours x the job's vCPU
    share. A job using 2 of a 4-vCPU node's vCPUs for an hour on a $0.40/h node costs $0.20.
    """
    if price_per_hour <= 0 or run_seconds <= 0:
        return 0.0
    share = 1.0 if node_vcpus <= 0 else min(1.0, max(0.0, job_vcpus / node_vcpus))
    return price_per_hour * (run_seconds / 3600.0) * share
