"""The operator's settings: one object, built once from the command line, passed down.

No module reads environment variables or global configuration on its own (crate-operator's
lesson): ``kubatch operator`` parses its flags into a :class:`Settings` and every part of the
controller gets what it needs from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kubatch.core.catalogue import DEFAULT, Catalogue
from kubatch.core.state import CacheConfig


@dataclass(frozen=True, slots=True)
class Timings:
    """How the loop paces itself (seconds)."""

    debounce: float = 0.03
    """Wait after a wake-up so that a burst of events makes one cycle."""
    idle: float = 1.0
    """Longest sleep between cycles (time limits, deadlines and grace periods need ticks)."""
    object_status: float = 2.0
    """How often queue and compute-environment status is recomputed (written on change)."""
    verdict_grace: float = 3.0
    """A finished Job whose pod never reported decides the attempt after this long."""
    deadline_grace: float = 60.0
    """The pod's own ``activeDeadlineSeconds`` is the attempt timeout plus this (a backstop
    for when the operator is down; the operator's timer, counted from the attempt's start,
    normally stops the attempt)."""
    children: float = 10.0
    """Array child records are written at most this often while children change."""
    pull_timeout: float = 600.0
    """A container that cannot be pulled or created ends its attempt after this long."""
    coalesce: float = 0.25
    """The status writer waits this long after a change so that changes close together
    (several phases passed, several jobs of one cycle) make one patch per job."""
    starting_hold: float = 5.0
    """An admitted job's Starting status waits up to this long for its pod to run, so that
    a pod that starts promptly costs one write (Running, with the attempt) instead of two;
    a pod that cannot run yet shows Starting with its reason at once (0: never hold)."""


JITTER = 1.2
"""client-go's JitterFactor: a standby waits up to this many retry periods between tries."""


@dataclass(frozen=True, slots=True)
class LeaseTimings:
    """The election's pace, in seconds (controller-runtime's names)."""

    duration: float = 10.0
    """``leaseDurationSeconds``: how long a standby waits, after the record last changed,
    before it takes a Lease whose holder stopped renewing."""
    renew_deadline: float = 7.0
    """A leader that has not renewed for this long stops writing."""
    retry_period: float = 2.0
    """Between two tries (renewals of the leader; a standby adds up to 20 % jitter)."""

    def __post_init__(self) -> None:
        if not self.duration > self.renew_deadline:
            raise ValueError(
                f"lease duration ({self.duration:g}s) must be longer than the renew deadline "
                f"({self.renew_deadline:g}s): a leader must stop before another may take over"
            )
        if not self.renew_deadline > JITTER * self.retry_period:
            raise ValueError(
                f"renew deadline ({self.renew_deadline:g}s) must be longer than {JITTER} times the "
                f"retry period ({self.retry_period:g}s): a leader needs more than one try"
            )
        if self.retry_period <= 0:
            raise ValueError(f"retry period must be positive, not {self.retry_period:g}s")


@dataclass(frozen=True, slots=True)
class Election:
    """Leader election among the replicas (``kubatch.controller.leader``)."""

    enabled: bool = True
    namespace: str | None = None
    """The Lease's namespace (None: the operator's own — its service account's, else its
    kubeconfig context's)."""
    name: str = "kubatch-leader"
    """The Lease's name: replicas that share it elect one leader."""
    timings: LeaseTimings = field(default_factory=LeaseTimings)


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """The validating admission webhook every replica serves (``controller.webhook``)."""

    port: int = 0
    """HTTPS port (0: no webhook)."""
    addr: str = "0.0.0.0"
    """Bind address."""
    configuration: str = "kubatch"
    """The ValidatingWebhookConfiguration whose caBundle the operator keeps (own certs)."""
    secret: str = "kubatch-webhook-tls"
    """The Secret holding the CA and serving certificate, shared by every replica."""
    namespace: str | None = None
    """The Secret's namespace (None: the operator's own, from its login)."""
    service: str | None = None
    """The Service the API server reaches the webhook through (its DNS names go into the
    serving certificate)."""
    url: str | None = None
    """The URL the API server reaches the webhook at instead (the local plane: loopback)."""
    cert_dir: Path | None = None
    """``tls.crt``/``tls.key`` provided there (cert-manager): no Secret, no caBundle."""
    register: bool = False
    """Write the whole configuration at start (local use; the chart installs its own)."""
    access_cache_seconds: float = 30.0
    """How long a SubjectAccessReview's "yes" is remembered (0: ask for every BatchJob)."""

    @property
    def enabled(self) -> bool:
        return self.port > 0

    @property
    def own_certs(self) -> bool:
        return self.cert_dir is None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the operator is told at start-up."""

    namespaces: tuple[str, ...] = ()
    """Watch BatchJobs/JobDefinitions only in these namespaces (empty: all)."""
    catalogue: Catalogue = DEFAULT
    """Instance types, sizes and prices (built in, extended by the user's file)."""
    cache: CacheConfig = field(default_factory=CacheConfig)
    timings: Timings = field(default_factory=Timings)
    job_retention: float = 7200.0
    """Seconds the Kubernetes Job (and pod, and so its logs) of an ended attempt is kept; the
    attempt's record stays in the BatchJob's status. 0 keeps them for ever."""
    retention_deletes_per_cycle: int = 50
    """Deletions of retained objects per cycle (paced: they are writes)."""
    write_concurrency: int = 48
    """API writes in flight at once."""
    identity: str = "kubatch-operator"
    """This replica's name (Events' reportingInstance, the leader lease's holder): unique
    per replica (the chart uses the pod's name)."""
    election: Election = field(default_factory=Election)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    strict_calls: bool = False
    """Every API call is checked against the declared table (``adapters.calls``): an
    undeclared one raises (tests, the demo, the e2e stack)."""
