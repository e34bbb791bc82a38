"""Who is looking: the viewer's Kubernetes identity, and the namespaces it may read.

Three modes (``kubatch console --auth``):

- ``none``: the console's own login (a local run, the demo): the viewer sees what it sees;
- ``token``: the request's ``Authorization: Bearer`` token; the console calls the API server
  with it (:meth:`Kube.with_bearer_token`), so the cluster authorizes the viewer, not the
  console. A request without one is answered 401;
- ``proxy``: an authenticating proxy in front of the console says who the user is in headers
  (``X-Forwarded-User``, ``X-Forwarded-Groups`` by default); the console acts as them through
  impersonation (:meth:`Kube.impersonating`). Only safe when nothing but the proxy can reach
  the console (the chart's Service is ClusterIP; see docs/console.md).

What a viewer may read is asked of the API server as the viewer (SelfSubjectAccessReview:
``list batchjobs`` cluster-wide, else per namespace), cached for a short while.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kubatch.adapters.kube import ApiError, Kube

MODES = ("none", "token", "proxy")
SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


class Unauthenticated(Exception):
    """The request does not say who the viewer is (the message says what is missing)."""


@dataclass(frozen=True)
class Who:
    """Pure: who the request says the viewer is."""

    mode: str
    user: str = ""
    groups: tuple[str, ...] = ()
    token: str = ""

    @property
    def key(self) -> str:
        """A stable key of the identity (cache, forms) that never reveals the token."""
        raw = f"{self.mode}\0{self.user}\0{','.join(self.groups)}\0{self.token}"
        return hashlib.sha256(raw.encode()).hexdigest()[:24]

    @property
    def label(self) -> str:
        if self.mode == "proxy":
            return self.user
        if self.mode == "token":
            return "bearer token …" + hashlib.sha256(self.token.encode()).hexdigest()[:6]
        return "the console's own identity"


def who_from_headers(
    mode: str,
    headers: Mapping[str, str],
    *,
    user_header: str = "X-Forwarded-User",
    group_header: str = "X-Forwarded-Groups",
) -> Who:
    """Pure: the viewer of a request with ``headers`` (case-insensitive mapping)."""
    if mode == "none":
        return Who("none")
    if mode == "token":
        auth = headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or any(c in token for c in "\r\n"):
            raise Unauthenticated("send your Kubernetes token: Authorization: Bearer <token>")
        return Who("token", token=token)
    if mode == "proxy":
        user = headers.get(user_header, "").strip()
        if not user:
            raise Unauthenticated(f"no authenticated user: the proxy sent no {user_header}")
        groups = tuple(g.strip() for g in headers.get(group_header, "").split(",") if g.strip())
        return Who("proxy", user=user, groups=groups)
    raise ValueError(f"unknown --auth mode {mode!r} (one of {', '.join(MODES)})")


def client_for(kube: Kube, who: Who) -> Kube:
    """The client that acts as ``who`` (sharing ``kube``'s connection pool)."""
    if who.mode == "token":
        return kube.with_bearer_token(who.token)
    if who.mode == "proxy":
        return kube.impersonating(who.user, groups=who.groups)
    return kube


def form_token(secret: bytes, who: Who, action: str) -> str:
    """Pure: the token a form of ``who`` carries for ``action`` (cross-site request guard)."""
    return hmac.new(secret, f"{who.key}\0{action}".encode(), hashlib.sha256).hexdigest()[:32]


def ssar_body(verb: str, namespace: str, resource: str = "batchjobs") -> dict[str, object]:
    """Pure: a SelfSubjectAccessReview of ``verb`` on kubatch's ``resource``."""
    attrs: dict[str, str] = {"verb": verb, "group": "kubatch.io", "resource": resource}
    if namespace:
        attrs["namespace"] = namespace
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attrs},
    }


async def can(kube: Kube, verb: str, namespace: str, resource: str = "batchjobs") -> bool:
    """Whether ``kube``'s identity may ``verb`` ``resource`` in ``namespace`` ('': all)."""
    try:
        doc = await kube.request(
            "POST", SSAR_PATH, body=ssar_body(verb, namespace, resource), resource="ssar"
        )
    except ApiError as err:
        if err.status == 401:
            raise Unauthenticated("the API server does not accept these credentials") from None
        return False
    return bool((doc.get("status") or {}).get("allowed"))


@dataclass
class AccessCache:
    """The namespaces each viewer may read, asked as the viewer and kept ``ttl`` seconds."""

    ttl: float = 30.0
    _seen: dict[str, tuple[float, frozenset[str] | None]] = field(default_factory=dict)
    _checked_sets: dict[str, frozenset[str]] = field(default_factory=dict)

    async def readable(
        self, kube: Kube, who: Who, namespaces: Iterable[str]
    ) -> frozenset[str] | None:
        """``None``: every namespace; else the set of ``namespaces`` the viewer may list."""
        if who.mode == "none":
            return None
        now = time.monotonic()
        wanted = set(namespaces)
        hit = self._seen.get(who.key)
        fresh = hit is not None and now - hit[0] < self.ttl
        if hit is not None and fresh and (hit[1] is None or wanted <= self._checked(who.key)):
            return hit[1]
        if await can(kube, "list", ""):
            result: frozenset[str] | None = None
        else:
            names = sorted(wanted)
            gate = asyncio.Semaphore(16)

            async def one(ns: str) -> bool:
                async with gate:
                    return await can(kube, "list", ns)

            allowed = await asyncio.gather(*(one(ns) for ns in names))
            result = frozenset(ns for ns, ok in zip(names, allowed, strict=True) if ok)
            self._checked_sets[who.key] = frozenset(names)
        if len(self._seen) > 1000:  # many viewers: forget the oldest
            for k in sorted(self._seen, key=lambda k: self._seen[k][0])[:500]:
                self._seen.pop(k, None)
                self._checked_sets.pop(k, None)
        self._seen[who.key] = (now, result)
        return result

    def _checked(self, key: str) -> frozenset[str]:
        return self._checked_sets.get(key, frozenset())
