"""AWS container and EKS pod properties <-> a Kubernetes pod template.

Pure. ``containerProperties`` (the ECS-style shape) becomes a pod with one container ``main``:
``command`` is Docker's CMD, so it becomes the container's ``args`` (the image's entrypoint
stays); ``vcpus``/``memory``/``resourceRequirements`` become requests (memory and GPUs also
limits, as AWS makes memory a hard limit); ``environment``, host and scratch ``volumes`` and
their ``mountPoints``, ``privileged``, ``readonlyRootFilesystem`` and a numeric ``user`` keep
their meaning. ``eksProperties.podProperties`` already uses Kubernetes' field names and is
checked and copied. Fields that only configure AWS infrastructure (roles, log drivers,
networking, Fargate) are accepted, returned unchanged and have no effect; fields kubatch cannot
honour (secrets from AWS stores, EFS volumes, devices) are refused with a ClientException.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any

from kubatch.batchapi.errors import ClientError, not_supported
from kubatch.batchapi.names import kube_name
from kubatch.batchapi.reader import Reader
from kubatch.core.resources import QuantityError, parse_quantity

JsonDict = dict[str, Any]
GPU = "nvidia.com/gpu"
MAIN = "main"
RESERVED_ENV = "AWS_BATCH"

CONTAINER_SUPPORTED = frozenset(
    {
        "image",
        "command",
        "environment",
        "vcpus",
        "memory",
        "resourceRequirements",
        "volumes",
        "mountPoints",
        "privileged",
        "readonlyRootFilesystem",
        "user",
        "linuxParameters",
    }
)
CONTAINER_NO_EFFECT = frozenset(
    {
        "jobRoleArn",
        "executionRoleArn",
        "logConfiguration",
        "networkConfiguration",
        "fargatePlatformConfiguration",
        "runtimePlatform",
        "repositoryCredentials",
        "enableExecuteCommand",
        "ulimits",
        "instanceType",
        "ephemeralStorage",
    }
)
CONTAINER_REFUSED = {
    "secrets": "use eksProperties with Kubernetes Secret volumes, or environment variables",
}
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]{1,3})?")
_INT = re.compile(r"[0-9]{1,9}")
_QUANTITY_KEYS = frozenset({"cpu", "memory", GPU})


# --------------------------------------------------------------------------- resources


def _positive_decimal(text: str, where: str) -> Decimal:
    if not _DECIMAL.fullmatch(text) or Decimal(text) <= 0:
        raise ClientError(f"{where}: {text[:40]!r} must be a positive number (e.g. 1 or 0.25)")
    return Decimal(text)


def _positive_int(text: str, where: str, lo: int = 1) -> int:
    if not _INT.fullmatch(text) or int(text) < lo:
        raise ClientError(f"{where}: {text[:40]!r} must be a whole number of at least {lo}")
    return int(text)


def _cpu(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def resource_requirements(
    r: Reader, *, vcpus_key: str = "vcpus", memory_key: str = "memory"
) -> tuple[dict[str, str], dict[str, str]]:
    """Pure: (requests, limits) from ``vcpus``/``memory`` and ``resourceRequirements``."""
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    vcpus = r.integer(vcpus_key, lo=1, hi=10_000)
    memory = r.integer(memory_key, lo=4, hi=10**9)
    seen: set[str] = set()
    for rr in r.structs("resourceRequirements", max_items=3) or []:
        rr.only(("type", "value"))
        kind = rr.req_str("type", enum=("VCPU", "MEMORY", "GPU"))
        value = rr.req_str("value", max_len=40)
        if kind in seen:
            raise ClientError(f"{rr.path}: {kind} is given twice")
        seen.add(kind)
        if kind == "VCPU":
            if vcpus is not None:
                raise ClientError(f"{rr.path}: VCPU and {r.field(vcpus_key)} are both given")
            requests["cpu"] = _cpu(_positive_decimal(value, rr.field("value")))
        elif kind == "MEMORY":
            if memory is not None:
                raise ClientError(f"{rr.path}: MEMORY and {r.field(memory_key)} are both given")
            mib = _positive_int(value, rr.field("value"), lo=4)
            requests["memory"] = limits["memory"] = f"{mib}Mi"
        else:
            gpus = _positive_int(value, rr.field("value"), lo=0)
            if gpus:
                requests[GPU] = limits[GPU] = str(gpus)
    if vcpus is not None:
        requests["cpu"] = str(vcpus)
    if memory is not None:
        requests["memory"] = limits["memory"] = f"{memory}Mi"
    return requests, limits


def requirements_of(requests: dict[str, Any]) -> list[JsonDict]:
    """Pure: AWS ``resourceRequirements`` of Kubernetes requests (MEMORY in MiB)."""
    out: list[JsonDict] = []
    if "cpu" in requests:
        try:
            cpu = parse_quantity(requests["cpu"])
            out.append({"type": "VCPU", "value": _cpu(cpu)})
        except QuantityError:
            pass
    if "memory" in requests:
        try:
            mib = (parse_quantity(requests["memory"]) / (1024 * 1024)).to_integral_value(
                ROUND_CEILING
            )
            out.append({"type": "MEMORY", "value": str(int(mib))})
        except (QuantityError, InvalidOperation):
            pass
    if GPU in requests:
        out.append({"type": "GPU", "value": str(requests[GPU])})
    return out


# --------------------------------------------------------------------------- environment


def environment(items: list[Reader] | None, where_name: str = "name") -> list[JsonDict]:
    """Pure: AWS ``[{name, value}]`` -> Kubernetes env; AWS_BATCH* names are reserved."""
    env: list[JsonDict] = []
    seen: set[str] = set()
    for item in items or []:
        item.only(("name", "value"))
        name = item.req_str(where_name, max_len=256, min_len=1)
        if name.startswith(RESERVED_ENV):
            raise ClientError(
                f"{item.field(where_name)}: names starting with AWS_BATCH are reserved"
            )
        if name in seen:
            raise ClientError(f"{item.field(where_name)}: variable {name!r} is set twice")
        seen.add(name)
        env.append({"name": name, "value": item.string("value") or ""})
    return env


# --------------------------------------------------------------------------- container


def _volumes(cp: Reader) -> tuple[list[JsonDict], dict[str, str]]:
    volumes: list[JsonDict] = []
    names: dict[str, str] = {}
    for v in cp.structs("volumes", max_items=100) or []:
        v.only(("name", "host", "efsVolumeConfiguration", "s3filesVolumeConfiguration"))
        for refused in ("efsVolumeConfiguration", "s3filesVolumeConfiguration"):
            if v.has(refused):
                raise not_supported(
                    v.field(refused), "use eksProperties with a persistentVolumeClaim"
                )
        name = v.req_str("name", max_len=255, min_len=1)
        kname = kube_name(name)
        if name in names:
            raise ClientError(f"{v.field('name')}: volume {name!r} is defined twice")
        names[name] = kname
        host = v.struct("host")
        if host is not None and host.has("sourcePath"):
            host.only(("sourcePath",))
            path = host.req_str("sourcePath", max_len=4096, min_len=1)
            volumes.append({"name": kname, "hostPath": {"path": path}})
        else:
            volumes.append({"name": kname, "emptyDir": {}})
    return volumes, names


def _mounts(cp: Reader, names: dict[str, str]) -> list[JsonDict]:
    mounts: list[JsonDict] = []
    for m in cp.structs("mountPoints", max_items=100) or []:
        m.only(("containerPath", "readOnly", "sourceVolume"))
        source = m.req_str("sourceVolume", max_len=255)
        if source not in names:
            raise ClientError(f"{m.field('sourceVolume')}: no volume named {source!r}")
        mount: JsonDict = {
            "name": names[source],
            "mountPath": m.req_str("containerPath", max_len=4096, min_len=1),
        }
        if m.boolean("readOnly"):
            mount["readOnly"] = True
        mounts.append(mount)
    return mounts


def _linux(cp: Reader, volumes: list[JsonDict], mounts: list[JsonDict]) -> None:
    lp = cp.struct("linuxParameters")
    if lp is None:
        return
    lp.only(("devices", "initProcessEnabled", "sharedMemorySize", "tmpfs", "maxSwap", "swappiness"))
    if lp.has("devices"):
        raise not_supported(lp.field("devices"), "host devices need a device plugin")
    lp.boolean("initProcessEnabled")
    lp.integer("maxSwap", lo=0)
    lp.integer("swappiness", lo=0, hi=100)
    shm = lp.integer("sharedMemorySize", lo=1, hi=10**7)
    if shm is not None:
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{shm}Mi"}})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    for i, t in enumerate(lp.structs("tmpfs", max_items=20) or []):
        t.only(("containerPath", "size", "mountOptions"))
        path = t.req_str("containerPath", max_len=4096, min_len=1)
        size = t.integer("size", required=True, lo=1, hi=10**7)
        t.strings("mountOptions", max_items=50, max_len=64)
        volumes.append(
            {"name": f"tmpfs-{i}", "emptyDir": {"medium": "Memory", "sizeLimit": f"{size}Mi"}}
        )
        mounts.append({"name": f"tmpfs-{i}", "mountPath": path})


def container_template(cp: Reader) -> JsonDict:
    """Pure: a pod template from AWS ``containerProperties``."""
    cp.only(CONTAINER_SUPPORTED | CONTAINER_NO_EFFECT | set(CONTAINER_REFUSED))
    for key, hint in CONTAINER_REFUSED.items():
        if cp.has(key):
            raise not_supported(cp.field(key), hint)
    image = cp.req_str("image", max_len=4096, min_len=1)
    container: JsonDict = {"name": MAIN, "image": image}
    command = cp.strings("command", max_items=1000)
    if command:
        container["args"] = command
    env = environment(cp.structs("environment", max_items=1000))
    if env:
        container["env"] = env
    requests, limits = resource_requirements(cp)
    resources: JsonDict = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    if resources:
        container["resources"] = resources
    volumes, names = _volumes(cp)
    mounts = _mounts(cp, names)
    _linux(cp, volumes, mounts)
    if mounts:
        container["volumeMounts"] = mounts
    security: JsonDict = {}
    if cp.boolean("privileged"):
        security["privileged"] = True
    if cp.boolean("readonlyRootFilesystem"):
        security["readOnlyRootFilesystem"] = True
    user = cp.string("user", max_len=64)
    if user is not None:
        if not user.isdigit():
            raise ClientError(
                f"{cp.field('user')}: {user[:64]!r} must be a numeric user id on Kubernetes"
            )
        security["runAsUser"] = int(user)
    if security:
        container["securityContext"] = security
    for key in CONTAINER_NO_EFFECT:
        _check_type(cp, key)
    spec: JsonDict = {"containers": [container]}
    if volumes:
        spec["volumes"] = volumes
    return {"spec": spec}


_LOG_DRIVERS = (
    "json-file",
    "syslog",
    "journald",
    "gelf",
    "fluentd",
    "awslogs",
    "splunk",
    "awsfirelens",
)


def _check_type(cp: Reader, key: str) -> None:
    """Fields without effect are still checked member by member: they are returned as given."""
    if key == "ulimits":
        for u in cp.structs(key, max_items=100) or []:
            u.only(("hardLimit", "name", "softLimit"))
            u.req_str("name", max_len=64)
            u.integer("hardLimit", required=True)
            u.integer("softLimit", required=True)
        return
    if key == "enableExecuteCommand":
        cp.boolean(key)
        return
    sub = cp.struct(key) if key in _STRUCTS else None
    if sub is None:
        if key not in _STRUCTS:
            cp.string(key, max_len=2048)
        return
    sub.only(_STRUCTS[key])
    if key == "logConfiguration":
        sub.req_str("logDriver", enum=_LOG_DRIVERS)
        sub.str_map("options", max_items=64)
        for so in sub.structs("secretOptions", max_items=64) or []:
            so.only(("name", "valueFrom"))
            so.req_str("name", max_len=256)
            so.req_str("valueFrom", max_len=2048)
    elif key == "networkConfiguration":
        sub.string("assignPublicIp", enum=("ENABLED", "DISABLED"))
    elif key == "ephemeralStorage":
        sub.integer("sizeInGiB", required=True, lo=1, hi=10**6)
    elif key == "repositoryCredentials":
        sub.req_str("credentialsParameter", max_len=2048)
    else:
        for member in _STRUCTS[key]:
            sub.string(member, max_len=256)


_STRUCTS: dict[str, tuple[str, ...]] = {
    "logConfiguration": ("logDriver", "options", "secretOptions"),
    "networkConfiguration": ("assignPublicIp",),
    "fargatePlatformConfiguration": ("platformVersion",),
    "runtimePlatform": ("operatingSystemFamily", "cpuArchitecture"),
    "repositoryCredentials": ("credentialsParameter",),
    "ephemeralStorage": ("sizeInGiB",),
}


def template_container(template: dict[str, Any]) -> JsonDict:
    """Pure: the ECS-style ``container`` view of a pod template's first container."""
    spec = template.get("spec") or {}
    containers = spec.get("containers") or [{}]
    c = containers[0] if isinstance(containers[0], dict) else {}
    out: JsonDict = {}
    if isinstance(c.get("image"), str):
        out["image"] = c["image"]
    command = c.get("args") if c.get("args") else c.get("command")
    if isinstance(command, list):
        out["command"] = [str(x) for x in command]
    env = [
        {"name": str(e.get("name")), "value": str(e.get("value", ""))}
        for e in c.get("env") or []
        if isinstance(e, dict) and e.get("name") and "valueFrom" not in e
    ]
    out["environment"] = env
    requests = ((c.get("resources") or {}).get("requests")) or {}
    if isinstance(requests, dict):
        out["resourceRequirements"] = requirements_of(requests)
    volumes = []
    for v in spec.get("volumes") or []:
        if not isinstance(v, dict) or not v.get("name"):
            continue
        vol: JsonDict = {"name": str(v["name"])}
        if isinstance(v.get("hostPath"), dict) and v["hostPath"].get("path"):
            vol["host"] = {"sourcePath": str(v["hostPath"]["path"])}
        volumes.append(vol)
    out["volumes"] = volumes
    out["mountPoints"] = [
        {
            "sourceVolume": str(m.get("name")),
            "containerPath": str(m.get("mountPath")),
            "readOnly": bool(m.get("readOnly", False)),
        }
        for m in c.get("volumeMounts") or []
        if isinstance(m, dict)
    ]
    sc = c.get("securityContext") or {}
    sc = sc if isinstance(sc, dict) else {}
    out["privileged"] = bool(sc.get("privileged", False))
    out["readonlyRootFilesystem"] = bool(sc.get("readOnlyRootFilesystem", False))
    if isinstance(sc.get("runAsUser"), int):
        out["user"] = str(sc["runAsUser"])
    out["ulimits"] = []
    return out


LIST_DEFAULTS = ("volumes", "environment", "mountPoints", "ulimits", "secrets")


def with_defaults(properties: dict[str, Any]) -> dict[str, Any]:
    """Pure: registered ``containerProperties`` as AWS describes them (empty lists shown)."""
    return {**{k: [] for k in LIST_DEFAULTS}, **properties}
