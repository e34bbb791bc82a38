"""helm/kubatch: lint, render, least-privilege RBAC, restricted pod, documented values."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubatch.adapters import calls
from kubatch.adapters.calls import Scope
from kubatch.api import admission
from kubatch.core.catalogue import parse_catalogue
from kubatch.local.helm import ensure_helm

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "kubatch"

Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="module")
def helm() -> Path:
    return ensure_helm()


@pytest.fixture(scope="module")
def render(helm: Path) -> Render:
    def run(*sets: str) -> list[dict[str, Any]]:
        cmd = [str(helm), "template", "rel", str(CHART), "--namespace", "kubatch-system"]
        for s in sets:
            cmd += ["--set", s]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return [d for d in yaml.safe_load_all(proc.stdout) if d]

    return run


def by_kind(docs: list[dict[str, Any]], kind: str, suffix: str = "") -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]


def one(docs: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    found = by_kind(docs, kind, suffix)
    assert len(found) == 1, f"{len(found)} {kind}"
    return found[0]


def test_helm_is_v4(helm: Path) -> None:
    out = subprocess.run(
        [str(helm), "version", "--short"], capture_output=True, text=True, check=False
    )
    assert out.stdout.startswith("v4."), out.stdout


def test_helm_lint_passes(helm: Path) -> None:
    proc = subprocess.run(
        [str(helm), "lint", "--strict", str(CHART)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_renders_the_expected_objects(render: Render) -> None:
    kinds = sorted(d["kind"] for d in render())
    assert kinds == sorted(
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Service",
            "Deployment",
            "ConfigMap",
            "ValidatingWebhookConfiguration",
            "Service",
            "Role",
            "RoleBinding",
        ]
        + ["CustomResourceDefinition"] * 5
    )


def test_deployment_two_replicas_rolling_one_at_a_time_runs_the_operator(render: Render) -> None:
    dep = one(render(), "Deployment")
    spec = dep["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
    }
    assert one(render("replicaCount=1"), "Deployment")["spec"]["replicas"] == 1
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["kubatch"]
    assert container["args"][0] == "operator"
    assert container["ports"] == [
        {"name": "metrics", "containerPort": 8080, "protocol": "TCP"},
        {"name": "health", "containerPort": 8081, "protocol": "TCP"},
        {"name": "webhook", "containerPort": 9443, "protocol": "TCP"},
    ]
    assert pod["serviceAccountName"] == "rel-kubatch"
    assert container["resources"]["requests"]["cpu"]
    assert container["resources"]["limits"]["memory"]
    pod = one(
        render("operator.verbose=true", "operator.extraArgs={--namespace,team-a}"), "Deployment"
    )
    args = pod["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == [
        "operator",
        "--identity=$(POD_NAME)",
        "--health-port=8081",
        "--health-addr=0.0.0.0",
        "--metrics-port=8080",
        "--metrics-addr=0.0.0.0",
        "--verbose",
        "--webhook-port=9443",
        "--webhook-addr=0.0.0.0",
        "--webhook-configuration=rel-kubatch",
        "--webhook-service=rel-kubatch-webhook",
        "--webhook-secret=rel-kubatch-webhook-tls",
        "--webhook-namespace=kubatch-system",
        "--namespace",
        "team-a",
    ]


def test_pod_meets_the_restricted_pod_security_standard(render: Render) -> None:
    pod = one(render(), "Deployment")["spec"]["template"]["spec"]
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = pod["containers"][0]["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "privileged" not in sc
    assert not pod.get("hostNetwork")
    assert not pod.get("hostPID")


def rules_table(role: dict[str, Any]) -> calls.Rules:
    """``(group, resource, named) -> verbs`` of a rendered Role or ClusterRole."""
    table: calls.Rules = {}
    for rule in role["rules"]:
        assert set(rule) <= {"apiGroups", "resources", "verbs", "resourceNames"}, rule  # no URLs
        named = bool(rule.get("resourceNames"))
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                table.setdefault((group, resource, named), set()).update(rule["verbs"])
    return table


MODES = {
    "default": ((), calls.needs(webhook=True)),
    "cert-manager": (
        ("webhook.certManager.enabled=true",),
        calls.needs(webhook=True, own_certs=False),
    ),
    "no-webhook": (("webhook.enabled=false",), calls.needs(webhook=False)),
}


@pytest.mark.parametrize("mode", MODES, ids=list(MODES))
def test_roles_grant_exactly_the_declared_api_calls(render: Render, mode: str) -> None:
    """adapters/calls.py is the one table of the operator's API calls: the ClusterRole and the
    namespaced Role grant exactly its rows — no verb the code never uses, none missing."""
    sets, needs = MODES[mode]
    docs = render(*sets)
    role = one(docs, "ClusterRole")
    text = yaml.safe_dump(role["rules"])
    assert "*" not in text, "no wildcards"
    assert "secrets" not in text, "the one Secret is granted in a Role, by name"
    assert rules_table(role) == calls.rbac_rules(needs, Scope.CLUSTER)
    roles = operator_roles(docs)
    namespaced = calls.rbac_rules(needs, Scope.NAMESPACE)
    granted: dict[tuple[str, str, bool], set[str]] = {}
    for ns_role in roles:  # the webhook's Secret and the leader election's Lease
        assert ns_role["metadata"]["namespace"] == "kubatch-system"
        for key, verbs in rules_table(ns_role).items():
            granted.setdefault(key, set()).update(verbs)
    assert granted == namespaced
    for rule in role["rules"] + [r for d in roles for r in d["rules"]]:
        if rule.get("resourceNames"):  # named grants name exactly the operator's objects
            assert rule["resourceNames"] in (["rel-kubatch"], ["rel-kubatch-webhook-tls"]), rule


def operator_roles(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The operator's namespaced Roles (not the optional AWS API's or console's)."""
    return [
        d
        for d in by_kind(docs, "Role")
        if not any(part in d["metadata"]["name"] for part in ("batch-api", "console"))
    ]


def test_leader_election_may_only_take_leases_in_its_namespace(render: Render) -> None:
    docs = render()
    role, binding = one(docs, "Role", "-election"), one(docs, "RoleBinding", "-election")
    assert role["metadata"]["namespace"] == "kubatch-system"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "verbs": ["get", "create", "patch"]}
    ]  # fmt: skip
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}  # fmt: skip
    assert binding["subjects"][0]["name"] == one(docs, "ServiceAccount")["metadata"]["name"]
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("valueFrom") for e in container["env"]}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["KUBATCH_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_binding_ties_the_role_to_the_service_account(render: Render) -> None:
    docs = render()
    binding = one(docs, "ClusterRoleBinding")
    sa = one(docs, "ServiceAccount")
    assert binding["roleRef"]["name"] == one(docs, "ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "kubatch-system"}
    ]


def test_rbac_and_service_account_can_be_turned_off(render: Render) -> None:
    kinds = {d["kind"] for d in render("rbac.create=false", "serviceAccount.create=false")}
    assert not kinds & {
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ServiceAccount",
    }


def test_metrics_service_selects_the_operator_pod(render: Render) -> None:
    docs = render()
    svc = one(docs, "Service", "-metrics")
    dep = one(docs, "Deployment")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert svc["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]


def test_service_monitor_is_optional(render: Render) -> None:
    assert not by_kind(render(), "ServiceMonitor")
    docs = render(
        "metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=kps"
    )
    sm = one(docs, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "kps"
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    svc_labels = one(docs, "Service", "-metrics")["metadata"]["labels"]
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc_labels.items()
    no_metrics = render("metrics.enabled=false", "metrics.serviceMonitor.enabled=true")
    assert not by_kind(no_metrics, "ServiceMonitor")
    assert [d["metadata"]["name"] for d in by_kind(no_metrics, "Service")] == [
        "rel-kubatch-webhook"
    ]


def test_dashboard_config_map_embeds_the_dashboard_file(render: Render) -> None:
    cm = one(render(), "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = (ROOT / "dashboards" / "kubatch.json").read_text()
    assert cm["data"]["kubatch.json"] == shipped.rstrip("\n")
    assert not by_kind(render("dashboard.enabled=false"), "ConfigMap")


def test_chart_copy_of_the_dashboard_is_identical() -> None:
    chart_copy = CHART / "files" / "kubatch.json"
    assert chart_copy.read_bytes() == (ROOT / "dashboards" / "kubatch.json").read_bytes(), (
        "run: cp dashboards/kubatch.json helm/kubatch/files/kubatch.json"
    )


def documented_value_paths() -> list[str]:
    """Paths of values.yaml keys that carry a ``# --`` comment (their children inherit it)."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, str]] = []
    paths: list[str] = []
    undocumented: list[str] = []
    documented_prefixes: set[str] = set()
    prev = ""
    for line in lines:
        m = re.match(r"^( *)([A-Za-z][A-Za-z0-9_]*):", line)
        if m:
            indent = len(m.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            path = ".".join([p for _, p in stack] + [m.group(2)])
            stack.append((indent, m.group(2)))
            if prev.strip().startswith("# --"):
                paths.append(path)
                documented_prefixes.add(path)
            elif not any(path.startswith(p + ".") for p in documented_prefixes):
                # a grouping key (e.g. ``metrics:``) is fine if all its children are documented
                after = line.split(":", 1)[1].strip()
                if after and not after.startswith("#"):
                    undocumented.append(path)
        if line.strip():
            prev = line
    assert not undocumented, f"values without a '# --' comment: {undocumented}"
    return paths


def test_every_value_is_documented_in_values_yaml_and_readme() -> None:
    paths = documented_value_paths()
    assert len(paths) >= 20
    readme = (CHART / "README.md").read_text()
    missing = [p for p in paths if f"`{p}`" not in readme]
    assert not missing, f"README.md does not document: {missing}"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for p in paths:  # each documented path exists in the parsed values
        node: Any = values
        for part in p.split("."):
            assert isinstance(node, dict), p
            assert part in node, p
            node = node[part]


def test_chart_ships_the_generated_crds(helm: Path) -> None:
    chart_crds = sorted(p.name for p in (CHART / "files" / "crds").glob("*.yaml"))
    assert chart_crds == sorted(
        f"kubatch.io_{p}.yaml"
        for p in (
            "batchjobs",
            "jobqueues",
            "computeenvironments",
            "jobdefinitions",
            "consumableresources",
        )
    )
    for name in chart_crds:
        shipped = (CHART / "files" / "crds" / name).read_text()
        assert shipped == (ROOT / "crds" / name).read_text(), name
    # Templates, not crds/ (which Helm never upgrades): every install and upgrade applies them.
    assert not (CHART / "crds").exists()
    proc = subprocess.run(
        [str(helm), "template", "rel", str(CHART)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rendered = {
        d["metadata"]["name"]: d
        for d in yaml.safe_load_all(proc.stdout)
        if d and d["kind"] == "CustomResourceDefinition"
    }
    assert len(rendered) == 5
    for name in chart_crds:
        generated = yaml.safe_load((ROOT / "crds" / name).read_text())
        crd = rendered[generated["metadata"]["name"]]
        assert crd["spec"] == generated["spec"], name
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_crds_can_be_left_to_the_user_and_dropped_on_uninstall(render: Render) -> None:
    assert not by_kind(render("crds.install=false"), "CustomResourceDefinition")
    for crd in by_kind(render("crds.keep=false"), "CustomResourceDefinition"):
        assert "helm.sh/resource-policy" not in (crd["metadata"].get("annotations") or {})


def test_host_network_talks_to_the_api_server_on_loopback(render: Render) -> None:
    pod = one(
        render(
            "hostNetwork=true", "apiServer.host=127.0.0.1", "apiServer.port=6443",
            "metrics.bindAddress=127.0.0.1", "health.bindAddress=127.0.0.1", "health.port=9000",
        ),
        "Deployment",
    )["spec"]["template"]["spec"]  # fmt: skip
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "6443"
    assert "--metrics-addr=127.0.0.1" in container["args"]
    assert "--health-addr=127.0.0.1" in container["args"]
    assert "--health-port=9000" in container["args"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    default = one(render(), "Deployment")["spec"]["template"]["spec"]
    assert "hostNetwork" not in default
    assert "KUBERNETES_SERVICE_HOST" not in {e["name"] for e in default["containers"][0]["env"]}


def test_dockerfile_is_slim_pinned_non_root_and_runs_the_operator() -> None:
    text = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    assert bases, "no FROM"
    # the base is a build argument whose default is the public slim image
    assert all(b == "${BASE_IMAGE}" for b in bases), bases
    assert re.search(r"^ARG BASE_IMAGE=python:3.11-slim-bookworm$", text, flags=re.MULTILINE)
    assert "-c constraints.txt" in text
    (user,) = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    uid = user.split(":")[0]
    assert uid.isdigit(), "numeric USER (so runAsNonRoot can verify it)"
    assert int(uid) != 0
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    assert re.search(r'^ENTRYPOINT \["kubatch", "operator"\]$', text, flags=re.MULTILINE)
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.MULTILINE)
    for sources in copied:
        for src in sources.split():
            assert src not in ignored, f"{src} is copied but .dockerignore excludes it"
    assert {".git", ".venv", "tests"} <= set(ignored)


def test_batch_api_is_off_by_default_and_least_privilege_when_on(render: Render) -> None:
    assert not [d for d in render() if "batch-api" in d["metadata"]["name"]]
    docs = render("batchApi.enabled=true", "batchApi.replicas=2")
    api = [d for d in docs if "batch-api" in d["metadata"]["name"]]
    assert sorted(d["kind"] for d in api) == sorted(
        [
            "Deployment",
            "Service",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
        ]
    )
    dep = next(d for d in api if d["kind"] == "Deployment")
    operator = next(d for d in docs if d["kind"] == "Deployment" and d is not dep)
    pod = dep["spec"]["template"]
    assert dep["spec"]["replicas"] == 2
    (container,) = pod["spec"]["containers"]
    assert container["args"][:2] == ["batch-api", "--host=0.0.0.0"]
    assert "--keys-secret=kubatch-system/kubatch-batch-api-keys" in container["args"]
    assert pod["spec"]["serviceAccountName"] == "rel-kubatch-batch-api"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # Neither Deployment's selector matches the other's pods.
    op_sel = operator["spec"]["selector"]["matchLabels"]
    api_sel = dep["spec"]["selector"]["matchLabels"]
    assert not op_sel.items() <= pod["metadata"]["labels"].items()
    assert not api_sel.items() <= operator["spec"]["template"]["metadata"]["labels"].items()
    svc = next(d for d in api if d["kind"] == "Service")
    assert svc["spec"]["selector"] == api_sel
    role = next(d for d in api if d["kind"] == "ClusterRole")
    flat = {
        (g, r, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    assert not [x for x in flat if "*" in x or x[1] == "secrets" or x[2] == "watch"]
    assert ("kubatch.io", "batchjobs", "create") in flat
    assert not [x for x in flat if x[1].endswith("/status")]
    (keys,) = [d for d in api if d["kind"] == "Role"]
    assert keys["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["kubatch-batch-api-keys"],
            "verbs": ["get"],
        }
    ]


def test_webhook_configuration_is_the_operators_own(render: Render) -> None:
    """The chart's ValidatingWebhookConfiguration has the rules kubatch.api.admission builds
    (the four kinds on CREATE and UPDATE, never /status; failurePolicy Fail), reached through
    the webhook's Service, whose selector picks the operator's pods."""
    docs = render()
    vwc = one(docs, "ValidatingWebhookConfiguration")
    assert vwc["metadata"]["name"] == "rel-kubatch"
    want = admission.webhook_configuration(
        "rel-kubatch", ca_bundle="", service=("kubatch-system", "rel-kubatch-webhook", 443)
    )
    assert vwc["webhooks"] == want["webhooks"]
    svc = one(docs, "Service", "-webhook")
    pod = one(docs, "Deployment")["spec"]["template"]
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert svc["spec"]["ports"] == [
        {"name": "webhook", "port": 443, "targetPort": "webhook", "protocol": "TCP"}
    ]
    binding = one(docs, "RoleBinding", "-webhook")
    assert binding["roleRef"]["name"] == one(docs, "Role", "-webhook")["metadata"]["name"]
    assert binding["subjects"][0]["name"] == "rel-kubatch"


def test_webhook_by_url_for_clusters_without_a_service_network(render: Render) -> None:
    docs = render("webhook.url=https://10.1.2.3:19443", "webhook.port=19443")
    vwc = one(docs, "ValidatingWebhookConfiguration")
    want = admission.webhook_configuration(
        "rel-kubatch", ca_bundle="", url="https://10.1.2.3:19443"
    )
    assert vwc["webhooks"] == want["webhooks"]
    assert [d["metadata"]["name"] for d in by_kind(docs, "Service")] == ["rel-kubatch-metrics"]
    args = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--webhook-url=https://10.1.2.3:19443" in args
    assert "--webhook-port=19443" in args
    assert not [a for a in args if a.startswith("--webhook-service")]


def test_webhook_certificate_from_cert_manager(render: Render) -> None:
    docs = render("webhook.certManager.enabled=true")
    assert not by_kind(docs, "Role", "-webhook"), "no Secret access: cert-manager writes it"
    cert = one(docs, "Certificate")
    assert cert["spec"]["secretName"] == "rel-kubatch-webhook-tls"
    assert cert["spec"]["dnsNames"][0] == "rel-kubatch-webhook.kubatch-system.svc"
    assert cert["spec"]["issuerRef"] == {"name": "rel-kubatch-selfsigned", "kind": "Issuer"}
    assert one(docs, "Issuer")["spec"] == {"selfSigned": {}}
    vwc = one(docs, "ValidatingWebhookConfiguration")
    inject = vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    assert inject == "kubatch-system/rel-kubatch-webhook"
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "--webhook-cert-dir=/etc/kubatch/webhook" in container["args"]
    assert not [a for a in container["args"] if a.startswith("--webhook-secret")]
    mount = {m["name"]: m for m in container["volumeMounts"]}["webhook-tls"]
    assert mount == {"name": "webhook-tls", "mountPath": "/etc/kubatch/webhook", "readOnly": True}
    volume = {v["name"]: v for v in pod["volumes"]}["webhook-tls"]
    assert volume["secret"] == {"secretName": "rel-kubatch-webhook-tls"}
    own = render(
        "webhook.certManager.enabled=true",
        "webhook.certManager.issuerRef.name=corp-ca",
        "webhook.certManager.issuerRef.kind=ClusterIssuer",
    )
    assert not by_kind(own, "Issuer")
    assert one(own, "Certificate")["spec"]["issuerRef"] == {
        "name": "corp-ca",
        "kind": "ClusterIssuer",
    }


def test_webhook_can_be_turned_off(render: Render) -> None:
    docs = render("webhook.enabled=false")
    assert not by_kind(docs, "ValidatingWebhookConfiguration")
    assert not by_kind(docs, "Role", "-webhook")
    args = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [a for a in args if a.startswith("--webhook")]


def test_catalogue_value_becomes_a_mounted_config_map(render: Render) -> None:
    assert not [d for d in render() if d["metadata"]["name"].endswith("-catalogue")]
    docs = render(
        "catalogue.instanceTypes[0].name=g5.xlarge",
        "catalogue.instanceTypes[0].vcpus=4",
        "catalogue.instanceTypes[0].memoryGiB=16",
        "catalogue.instanceTypes[0].gpus=1",
        "catalogue.instanceTypes[0].onDemandPrice=1.006",
        "catalogue.instanceTypes[0].spotPrice=0.4",
        "catalogue.instanceTypes[1].name=m5.large",
        "catalogue.instanceTypes[1].spotPrice=0.05",
    )
    cm = one(docs, "ConfigMap", "-catalogue")
    parsed = parse_catalogue(yaml.safe_load(cm["data"]["catalogue.yaml"]))
    g5 = parsed.get("g5.xlarge")
    assert g5 is not None
    assert g5.gpus == 1
    m5 = parsed.get("m5.large")
    assert m5 is not None
    assert m5.spot_price == 0.05
    pod = one(docs, "Deployment")["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert "--catalogue=/etc/kubatch/catalogue/catalogue.yaml" in container["args"]
    volume = {v["name"]: v for v in pod["spec"]["volumes"]}["catalogue"]
    assert volume["configMap"]["name"] == cm["metadata"]["name"]
    before = one(render(), "Deployment")["spec"]["template"]["metadata"]["annotations"]
    after = pod["metadata"]["annotations"]
    assert before["checksum/catalogue"] != after["checksum/catalogue"], "a new catalogue restarts"


def test_batch_api_follows_host_network_and_the_api_server_address(render: Render) -> None:
    docs = render("batchApi.enabled=true", "hostNetwork=true", "apiServer.host=127.0.0.1",
                  "apiServer.port=6443")  # fmt: skip
    dep = next(
        d for d in docs if d["kind"] == "Deployment" and "batch-api" in d["metadata"]["name"]
    )
    pod = dep["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]) == ("127.0.0.1", "6443")


def test_console_is_off_by_default_and_least_privilege_when_on(render: Render) -> None:
    assert not [d for d in render() if "console" in d["metadata"]["name"]]
    docs = render("console.enabled=true")
    ours = [d for d in docs if d["metadata"]["name"] == "rel-kubatch-console"]
    assert sorted(d["kind"] for d in ours) == sorted(
        ["Deployment", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"]
    )
    dep = next(d for d in ours if d["kind"] == "Deployment")
    pod = dep["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["args"] == ["console", "--host=0.0.0.0", "--port=8090", "--auth=none"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["serviceAccountName"] == "rel-kubatch-console"
    svc = next(d for d in ours if d["kind"] == "Service")
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    operator = next(d for d in docs if d["kind"] == "Deployment" and d is not dep)
    assert (
        not svc["spec"]["selector"].items()
        <= operator["spec"]["template"]["metadata"]["labels"].items()
    )

    def verbs(*sets: str) -> set[tuple[str, str, str]]:
        role = next(
            d for d in render("console.enabled=true", *sets)
            if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "rel-kubatch-console"
        )  # fmt: skip
        return {
            (g, r, v)
            for rule in role["rules"]
            for g in rule["apiGroups"]
            for r in rule["resources"]
            for v in rule["verbs"]
        }

    plain = verbs()
    assert not [x for x in plain if "*" in x or x[1] == "secrets"]
    assert ("kubatch.io", "batchjobs", "watch") in plain
    assert ("", "pods/log", "get") in plain
    assert not [x for x in plain if x[2] in ("create", "update", "patch", "delete", "impersonate")]
    assert ("kubatch.io", "batchjobs", "patch") in verbs("console.allowTerminate=true")
    # As the viewer: the console itself reads only its index's kinds; proxy may impersonate.
    token = verbs("console.auth=token")
    assert not [x for x in token if x[1] in ("pods", "pods/log", "configmaps")]
    assert ("kubatch.io", "batchjobs", "patch") not in verbs(
        "console.auth=token", "console.allowTerminate=true"
    )
    assert ("", "users", "impersonate") in verbs("console.auth=proxy")
    assert ("", "users", "impersonate") not in plain


def test_console_auth_is_checked(helm: Path) -> None:
    proc = subprocess.run(
        [str(helm), "template", "rel", str(CHART), "--set", "console.enabled=true",
         "--set", "console.auth=open"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "console.auth must be none, token or proxy" in proc.stderr
