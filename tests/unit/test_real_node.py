"""The real node's pure parts: kubelet, containerd and CNI configuration, the node address,
the Debian mirror lookup, the chart's local values, and the real-node example."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import yaml

from kubatch.api.models import parse_job_definition, parse_job_queue
from kubatch.api.validation import check_manifest
from kubatch.local import chart, containerd, images, node, packages, realjobs
from kubatch.local.plane import PlaneState

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = Path("/state/node")


def make_node(ip: str = "198.18.1.2") -> node.NodeState:
    return node.NodeState(
        name=node.NODE_NAME,
        node_id="0a1b2c3d",
        ip=ip,
        dir=str(NODE_DIR),
        cgroup_root="/kubatch-0a1b2c3d",
        bridge="kb0a1b2c3d",
        kubelet_port=10250,
        healthz_port=10248,
        images=[],
    )


def test_kubelet_serves_on_the_node_address_and_keeps_off_host_settings() -> None:
    cfg = json.loads(node.render_kubelet_config(make_node(), Path("/state/pki/ca.crt")))
    assert cfg["kind"] == "KubeletConfiguration"
    assert (cfg["address"], cfg["port"], cfg["readOnlyPort"]) == ("198.18.1.2", 10250, 0)
    assert cfg["healthzBindAddress"] == "127.0.0.1"
    assert cfg["authentication"]["anonymous"] == {"enabled": False}
    assert cfg["authentication"]["x509"]["clientCAFile"] == "/state/pki/ca.crt"
    assert cfg["authorization"]["mode"] == "Webhook"
    assert cfg["cgroupDriver"] == "cgroupfs"
    assert cfg["cgroupRoot"] == "/kubatch-0a1b2c3d"
    assert cfg["makeIPTablesUtilChains"] is False  # never touch the host's firewall
    assert cfg["protectKernelDefaults"] is False  # tunables are shadowed, see KERNEL_TUNABLES


def test_kubelet_talks_cri_to_its_own_containerd() -> None:
    n = make_node()
    argv = node.kubelet_argv(Path("/bin/kubelet"), n, Path("/c.json"), Path("/k"), "p:1")
    sock = f"unix://{NODE_DIR}/containerd/containerd.sock"
    assert "--container-runtime=remote" in argv
    assert f"--container-runtime-endpoint={sock}" in argv
    assert "--node-ip=198.18.1.2" in argv
    assert f"--hostname-override={node.NODE_NAME}" in argv
    labels = next(a for a in argv if a.startswith("--node-labels="))
    assert "kubatch.io/compute-environment=real-node" in labels


def test_containerd_starts_its_own_mount_namespace() -> None:
    argv = node.containerd_argv(make_node(), Path("/cfg.toml"))
    assert Path(argv[0]).name == "unshare"
    assert argv[1:5] == ["--mount", "--propagation", "private", "--"]
    assert Path(argv[-3]).name == "containerd"
    assert argv[-2:] == ["--config", "/cfg.toml"]
    script = argv[argv.index("-c") + 1]
    assert 'mount --bind "$node/kubelet" /var/lib/kubelet' in script
    assert 'mount --bind "$node/pod-logs" /var/log/pods' in script


def test_containerd_config_keeps_everything_under_the_node_dir() -> None:
    text = containerd.render_config(
        NODE_DIR, sandbox_image=images.PAUSE_NAME, cni_bin_dir=Path("/usr/lib/cni")
    )
    cfg = tomllib.loads(text)
    assert cfg["root"] == f"{NODE_DIR}/containerd/root"
    assert cfg["state"] == f"{NODE_DIR}/containerd/state"
    assert cfg["grpc"]["address"] == f"{NODE_DIR}/containerd/containerd.sock"
    cri = cfg["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == "kubatch.local/pause:3.4"
    assert cri["restrict_oom_score_adj"] is True
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["cni"]["conf_dir"] == f"{NODE_DIR}/cni/net.d"
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["options"] == {"Root": f"{NODE_DIR}/containerd/runc", "SystemdCgroup": False}


def test_pod_network_has_no_way_out() -> None:
    conf = json.loads(containerd.render_cni(NODE_DIR, "kb0a1b2c3d"))
    (bridge,) = conf["plugins"]
    assert bridge["type"] == "bridge"
    assert bridge["bridge"] == "kb0a1b2c3d"
    assert len(bridge["bridge"]) <= 15  # IFNAMSIZ
    assert bridge["isGateway"] is False
    assert bridge["isDefaultGateway"] is False
    assert bridge["ipMasq"] is False
    assert "routes" not in bridge["ipam"]
    assert bridge["ipam"]["dataDir"] == f"{NODE_DIR}/cni/ipam"


@pytest.mark.parametrize(
    ("node_id", "taken"),
    [
        pytest.param("00000000", set(), id="first"),
        pytest.param("ffffffff", set(), id="last"),
        pytest.param("0a1b2c3d", {"198.18.0.1"}, id="unrelated-taken"),
    ],
)
def test_node_address_is_a_benchmark_range_host_address(node_id: str, taken: set[str]) -> None:
    ip = node.node_ip(node_id, taken)
    a, b, c, d = (int(x) for x in ip.split("."))
    assert (a, b) in ((198, 18), (198, 19))
    assert 0 <= c <= 255
    assert 1 <= d <= 254
    assert ip not in taken
    assert node.node_ip(node_id, taken) == ip  # deterministic


def test_node_address_skips_addresses_in_use() -> None:
    first = node.node_ip("0a1b2c3d", set())
    assert node.node_ip("0a1b2c3d", {first}) != first


def test_debian_mirror_from_deb822_and_one_line_sources(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n"
    )
    assert packages.debian_mirror("bookworm", [deb822]) == "http://mirror.example/debian"
    legacy = tmp_path / "sources.list"
    legacy.write_text(
        "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://other.example/debian bookworm main\n"
    )
    assert packages.debian_mirror("bookworm", [legacy]) == "http://other.example/debian"
    with pytest.raises(packages.PackagesError, match="no apt source for Debian trixie"):
        packages.debian_mirror("trixie", [deb822, legacy])


def test_chart_values_for_the_local_plane() -> None:
    state = PlaneState(state_dir="/s", token="t", apiserver_port=6443, kubectl="k")
    state.node = make_node()
    image = images.Image("kubatch.local/kubatch:0.1.0-abc", Path("/x.tar"))
    values = chart.local_values(state, image, metrics_port=9100, health_port=9101)
    assert values["image"] == {
        "repository": "kubatch.local/kubatch",
        "tag": "0.1.0-abc",
        "pullPolicy": "Never",
    }
    assert values["hostNetwork"] is True
    assert values["apiServer"] == {"host": "127.0.0.1", "port": "6443"}
    assert values["metrics"] == {"port": 9100, "bindAddress": "198.18.1.2"}
    assert values["health"] == {"port": 9101, "bindAddress": "198.18.1.2"}
    # No Service network: the API server calls the webhook by URL at the node's address.
    assert values["webhook"] == {"port": 9102, "bindAddress": "198.18.1.2",
                                 "url": "https://198.18.1.2:9102"}  # fmt: skip
    with_port = chart.local_values(state, image, metrics_port=1, health_port=2, webhook_port=7)
    assert with_port["webhook"]["url"] == "https://198.18.1.2:7"
    assert values["nodeSelector"] == {node.REAL_NODE_LABEL: "true"}
    done = chart.Installed("kubatch", "kubatch-system", image.name, "198.18.1.2", 9100, 9101)
    assert done.fullname == "kubatch"
    assert done.metrics_url == "http://198.18.1.2:9100/metrics"
    assert chart.Installed("r", "ns", "i", "ip", 1, 2).fullname == "r-kubatch"


def test_the_real_node_example_is_valid_and_never_pulls() -> None:
    docs = [
        d
        for d in yaml.safe_load_all((ROOT / "examples" / "real-node" / "jobs.yaml").read_text())
        if d
    ]
    kinds = sorted({d["kind"] for d in docs})
    assert kinds == ["BatchJob", "ComputeEnvironment", "JobDefinition", "JobQueue"]
    queues = {d["metadata"]["name"]: parse_job_queue(d) for d in docs if d["kind"] == "JobQueue"}
    defs = {
        d["metadata"]["name"]: parse_job_definition(d) for d in docs if d["kind"] == "JobDefinition"
    }
    for doc in docs:
        problems = check_manifest(doc, queues=queues, definitions=defs)
        assert problems == [], (doc["metadata"]["name"], problems)
    (ce,) = [d for d in docs if d["kind"] == "ComputeEnvironment"]
    assert ce["spec"]["type"] == "Unmanaged"
    assert ce["spec"]["nodeSelector"] == {
        "kubatch.io/compute-environment": node.NODE_LABELS["kubatch.io/compute-environment"]
    }
    for d in docs:
        if d["kind"] == "JobDefinition":
            for c in d["spec"]["template"]["spec"]["containers"]:
                assert c["image"] == images.BUSYBOX_NAME, c["image"]
                assert c["imagePullPolicy"] in ("IfNotPresent", "Never")


def test_busybox_name_is_listed_as_busybox() -> None:
    assert "busybox" in images.BUSYBOX_NAME
    assert images.PAUSE_NAME.startswith(f"{images.REGISTRY}/")


def test_real_job_report_line() -> None:
    job = {
        "metadata": {"name": "real-oom"},
        "status": {"phase": "Failed", "attempts": [{"exitCode": 137, "reason": "OOMKilled"}]},
    }
    assert (
        realjobs.describe(job, "allocating")
        == '[real] real-oom: Failed (exit 137 OOMKilled) — logs: "allocating"'
    )
    assert realjobs.describe({"metadata": {"name": "x"}}, None) == "[real] x: Submitted"
    assert realjobs.example_file() == ROOT / "examples" / "real-node" / "jobs.yaml"
