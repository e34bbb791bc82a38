"""AWS ``eksProperties.podProperties`` <-> a Kubernetes pod template.

Pure. The AWS shape uses Kubernetes' own field names, so translation is a checked copy: each
member is type-checked (the client may not be botocore), quantities are parsed, names must be
DNS labels, ``AWS_BATCH*`` variables are reserved, and a container's missing requests default
to its limits as Kubernetes does. The reverse (``pod_properties``) shows a pod template,
including one written with kubectl, as ``eksProperties``: only the members AWS's shape has.
"""

from __future__ import annotations

import re
from typing import Any

from kubatch.batchapi.errors import ClientError, not_supported
from kubatch.batchapi.pods import environment
from kubatch.batchapi.reader import Reader, check_str
from kubatch.core.resources import QuantityError, parse_quantity

JsonDict = dict[str, Any]
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
RESOURCE_KEYS = ("cpu", "memory", "nvidia.com/gpu")
_SECURITY_BOOLS = (
    "privileged",
    "allowPrivilegeEscalation",
    "readOnlyRootFilesystem",
    "runAsNonRoot",
)


def _dns(r: Reader, key: str, *, required: bool = False) -> str | None:
    return r.string(key, required=required, max_len=63, pattern=_DNS_LABEL, what="a DNS label")


def _quantities(r: Reader, key: str) -> dict[str, str]:
    values = r.str_map(key, max_items=3, max_value=64) or {}
    for name, value in values.items():
        if name not in RESOURCE_KEYS:
            raise ClientError(f"{r.field(key)}.{name}: only cpu, memory and nvidia.com/gpu")
        try:
            if parse_quantity(value) <= 0 and name != "nvidia.com/gpu":
                raise ClientError(f"{r.field(key)}.{name}: must be greater than zero")
        except QuantityError:
            raise ClientError(f"{r.field(key)}.{name}: {value[:40]!r} is not a quantity") from None
    return values


def _seccomp(r: Reader, key: str) -> JsonDict | None:
    s = r.struct(key)
    if s is None:
        return None
    s.only(("type", "localhostProfile"))
    out: JsonDict = {"type": s.req_str("type", enum=("RuntimeDefault", "Localhost", "Unconfined"))}
    if s.has("localhostProfile"):
        out["localhostProfile"] = s.string("localhostProfile", max_len=4096)
    return out


def _container_security(r: Reader) -> JsonDict | None:
    sc = r.struct("securityContext")
    if sc is None:
        return None
    sc.only(("runAsUser", "runAsGroup", *_SECURITY_BOOLS, "capabilities", "seccompProfile"))
    out: JsonDict = {}
    for key in ("runAsUser", "runAsGroup"):
        if sc.has(key):
            out[key] = sc.integer(key, lo=0, hi=2**31 - 1)
    for key in _SECURITY_BOOLS:
        if sc.has(key):
            out[key] = sc.boolean(key)
    caps = sc.struct("capabilities")
    if caps is not None:
        caps.only(("add", "drop"))
        out["capabilities"] = {
            k: v for k in ("add", "drop") if (v := caps.strings(k, max_items=64, max_len=64))
        }
    seccomp = _seccomp(sc, "seccompProfile")
    if seccomp:
        out["seccompProfile"] = seccomp
    return out


def container(r: Reader, index: int) -> JsonDict:
    """Pure: one checked container (``containers`` or ``initContainers``)."""
    r.only(
        (
            "name",
            "image",
            "imagePullPolicy",
            "command",
            "args",
            "env",
            "resources",
            "volumeMounts",
            "securityContext",
        )
    )
    out: JsonDict = {
        "name": _dns(r, "name") or ("default" if index == 0 else f"container-{index}"),
        "image": r.req_str("image", max_len=4096, min_len=1),
    }
    policy = r.string("imagePullPolicy", enum=("Always", "IfNotPresent", "Never"))
    if policy:
        out["imagePullPolicy"] = policy
    for key in ("command", "args"):
        values = r.strings(key, max_items=1000)
        if values is not None:
            out[key] = values
    env = environment(r.structs("env", max_items=1000))
    if env:
        out["env"] = env
    res = r.struct("resources")
    if res is not None:
        res.only(("limits", "requests"))
        limits, requests = _quantities(res, "limits"), _quantities(res, "requests")
        for name, value in limits.items():
            requests.setdefault(name, value)
        resources: JsonDict = {}
        if requests:
            resources["requests"] = requests
        if limits:
            resources["limits"] = limits
        out["resources"] = resources
    mounts = []
    for m in r.structs("volumeMounts", max_items=100) or []:
        m.only(("name", "mountPath", "subPath", "readOnly"))
        mount: JsonDict = {
            "name": _dns(m, "name", required=True),
            "mountPath": m.req_str("mountPath", max_len=4096, min_len=1),
        }
        if m.has("subPath"):
            mount["subPath"] = m.string("subPath", max_len=4096)
        if m.boolean("readOnly"):
            mount["readOnly"] = True
        mounts.append(mount)
    if mounts:
        out["volumeMounts"] = mounts
    security = _container_security(r)
    if security:
        out["securityContext"] = security
    return out


def _volume(v: Reader) -> JsonDict:
    v.only(("name", "hostPath", "emptyDir", "secret", "persistentVolumeClaim"))
    out: JsonDict = {"name": _dns(v, "name", required=True)}
    kinds = [k for k in ("hostPath", "emptyDir", "secret", "persistentVolumeClaim") if v.has(k)]
    if len(kinds) > 1:
        raise ClientError(f"{v.path}: give only one of {', '.join(kinds)}")
    kind = kinds[0] if kinds else "emptyDir"
    src = v.struct(kind) or Reader({}, v.field(kind))
    if kind == "hostPath":
        src.only(("path",))
        out["hostPath"] = {"path": src.req_str("path", max_len=4096, min_len=1)}
    elif kind == "emptyDir":
        src.only(("medium", "sizeLimit"))
        ed: JsonDict = {}
        medium = src.string("medium", enum=("", "Memory"))
        if medium:
            ed["medium"] = medium
        size = src.string("sizeLimit", max_len=64)
        if size:
            try:
                parse_quantity(size)
            except QuantityError:
                raise ClientError(
                    f"{src.field('sizeLimit')}: {size[:40]!r} is not a quantity"
                ) from None
            ed["sizeLimit"] = size
        out["emptyDir"] = ed
    elif kind == "secret":
        src.only(("secretName", "optional"))
        sec: JsonDict = {"secretName": src.req_str("secretName", max_len=253, min_len=1)}
        if src.has("optional"):
            sec["optional"] = src.boolean("optional")
        out["secret"] = sec
    else:
        src.only(("claimName", "readOnly"))
        pvc: JsonDict = {"claimName": src.req_str("claimName", max_len=253, min_len=1)}
        if src.boolean("readOnly"):
            pvc["readOnly"] = True
        out["persistentVolumeClaim"] = pvc
    return out


def pod_template(ep: Reader, namespace: str) -> JsonDict:
    """Pure: a pod template from AWS ``eksProperties``."""
    ep.only(("podProperties",))
    pp = ep.struct("podProperties", required=True)
    assert pp is not None
    pp.only(
        (
            "serviceAccountName",
            "hostNetwork",
            "dnsPolicy",
            "imagePullSecrets",
            "containers",
            "initContainers",
            "volumes",
            "metadata",
            "shareProcessNamespace",
            "securityContext",
        )
    )
    items = pp.structs("containers", required=True, max_items=10) or []
    if not items:
        raise ClientError(f"{pp.field('containers')} needs at least one container")
    spec: JsonDict = {"containers": [container(c, i) for i, c in enumerate(items)]}
    inits = pp.structs("initContainers", max_items=10)
    if inits:
        spec["initContainers"] = [container(c, i + 1) for i, c in enumerate(inits)]
    names = [c["name"] for c in spec["containers"] + spec.get("initContainers", [])]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ClientError(
            f"{pp.field('containers')}: container name {sorted(dup)[0]!r} is used twice"
        )
    volumes = [_volume(v) for v in pp.structs("volumes", max_items=100) or []]
    if volumes:
        spec["volumes"] = volumes
    sa = pp.string("serviceAccountName", max_len=253)
    if sa:
        spec["serviceAccountName"] = sa
    if pp.has("hostNetwork"):
        spec["hostNetwork"] = pp.boolean("hostNetwork")
    dns = pp.string("dnsPolicy", enum=("Default", "ClusterFirst", "ClusterFirstWithHostNet"))
    if dns:
        spec["dnsPolicy"] = dns
    secrets = []
    for s in pp.structs("imagePullSecrets", max_items=20) or []:
        s.only(("name",))
        secrets.append({"name": s.req_str("name", max_len=253, min_len=1)})
    if secrets:
        spec["imagePullSecrets"] = secrets
    if pp.has("shareProcessNamespace"):
        spec["shareProcessNamespace"] = pp.boolean("shareProcessNamespace")
    psc = pp.struct("securityContext")
    if psc is not None:
        psc.only(("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile", "fsGroup"))
        sc: JsonDict = {}
        for key in ("runAsUser", "runAsGroup", "fsGroup"):
            if psc.has(key):
                sc[key] = psc.integer(key, lo=0, hi=2**31 - 1)
        if psc.has("runAsNonRoot"):
            sc["runAsNonRoot"] = psc.boolean("runAsNonRoot")
        seccomp = _seccomp(psc, "seccompProfile")
        if seccomp:
            sc["seccompProfile"] = seccomp
        spec["securityContext"] = sc
    template: JsonDict = {"spec": spec}
    meta = pp.struct("metadata")
    if meta is not None:
        meta.only(("labels", "annotations", "namespace"))
        ns = meta.string("namespace", max_len=63)
        if ns and ns != namespace:
            raise not_supported(
                f"{meta.field('namespace')} {ns!r}", f"your jobs run in namespace {namespace!r}"
            )
        labels = meta.str_map("labels", max_items=64, max_key=316, max_value=63)
        annotations = meta.str_map("annotations", max_items=64, max_key=316, max_value=4096)
        tm: JsonDict = {}
        if labels:
            for key in labels:
                check_str(key, f"{meta.field('labels')} key", max_len=316, min_len=1)
            tm["labels"] = labels
        if annotations:
            tm["annotations"] = annotations
        if tm:
            template["metadata"] = tm
    return template


# --------------------------------------------------------------------------- reverse


def _pick(src: Any, keys: tuple[str, ...]) -> JsonDict:
    return {k: src[k] for k in keys if isinstance(src, dict) and src.get(k) is not None}


def _container_view(c: dict[str, Any]) -> JsonDict:
    out = _pick(c, ("name", "image", "imagePullPolicy"))
    for key in ("command", "args"):
        if isinstance(c.get(key), list):
            out[key] = [str(x) for x in c[key]]
    out["env"] = [
        {"name": str(e["name"]), "value": str(e.get("value", ""))}
        for e in c.get("env") or []
        if isinstance(e, dict) and e.get("name") and "valueFrom" not in e
    ]
    res = c.get("resources") or {}
    if isinstance(res, dict):
        out["resources"] = {
            k: {str(n): str(v) for n, v in res[k].items()}
            for k in ("limits", "requests")
            if isinstance(res.get(k), dict)
        }
    out["volumeMounts"] = [
        _pick(m, ("name", "mountPath", "subPath", "readOnly"))
        for m in c.get("volumeMounts") or []
        if isinstance(m, dict)
    ]
    sc = c.get("securityContext")
    if isinstance(sc, dict):
        view = _pick(sc, ("runAsUser", "runAsGroup", *_SECURITY_BOOLS))
        caps = sc.get("capabilities")
        if isinstance(caps, dict):
            view["capabilities"] = _pick(caps, ("add", "drop"))
        if isinstance(sc.get("seccompProfile"), dict):
            view["seccompProfile"] = _pick(sc["seccompProfile"], ("type", "localhostProfile"))
        out["securityContext"] = view
    return out


def pod_properties(template: dict[str, Any]) -> JsonDict:
    """Pure: ``eksProperties.podProperties`` of a pod template (AWS's members only)."""
    spec = template.get("spec") or {}
    out = _pick(spec, ("serviceAccountName", "hostNetwork", "dnsPolicy", "shareProcessNamespace"))
    out["containers"] = [
        _container_view(c) for c in spec.get("containers") or [] if isinstance(c, dict)
    ]
    out["initContainers"] = [
        _container_view(c) for c in spec.get("initContainers") or [] if isinstance(c, dict)
    ]
    out["imagePullSecrets"] = [
        {"name": str(s["name"])}
        for s in spec.get("imagePullSecrets") or []
        if isinstance(s, dict) and s.get("name")
    ]
    volumes = []
    for v in spec.get("volumes") or []:
        if not isinstance(v, dict) or not v.get("name"):
            continue
        vol: JsonDict = {"name": str(v["name"])}
        for kind, keys in (
            ("hostPath", ("path",)),
            ("emptyDir", ("medium", "sizeLimit")),
            ("secret", ("secretName", "optional")),
            ("persistentVolumeClaim", ("claimName", "readOnly")),
        ):
            if isinstance(v.get(kind), dict):
                vol[kind] = {
                    k: (str(x) if k == "sizeLimit" else x) for k, x in _pick(v[kind], keys).items()
                }
        volumes.append(vol)
    out["volumes"] = volumes
    sc = spec.get("securityContext")
    if isinstance(sc, dict):
        view = _pick(sc, ("runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup"))
        if isinstance(sc.get("seccompProfile"), dict):
            view["seccompProfile"] = _pick(sc["seccompProfile"], ("type", "localhostProfile"))
        out["securityContext"] = view
    meta = template.get("metadata") or {}
    if isinstance(meta, dict) and (meta.get("labels") or meta.get("annotations")):
        out["metadata"] = _pick(meta, ("labels", "annotations"))
    return out
