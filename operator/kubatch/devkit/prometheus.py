"""A real Prometheus for the tests of the dashboard and the alerting rules.

:func:`ensure` finds Debian's ``prometheus`` package's two programs, ``prometheus`` and
``promtool`` (2.42 on bookworm): ``$KUBATCH_PROMETHEUS_DIR`` (a directory holding both), else
both on ``PATH``, else the cache (``~/.cache/kubatch/prometheus``), else it fetches the
package with ``apt-get download`` and unpacks it there with ``dpkg-deb -x`` — no install, no
service started, nothing outside the cache changed (``make prometheus`` runs exactly this).

:class:`PrometheusServer` runs one on loopback as a child process with a scrape configuration
and rule files of the caller's, and answers the HTTP API's questions (instant and range
queries, alerts, targets). Everything it starts it stops, by PID.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubatch.devkit.polling import eventually
from kubatch.devkit.process import Child, free_port

PACKAGE = "prometheus"
ENV_DIR = "KUBATCH_PROMETHEUS_DIR"


class PrometheusUnavailableError(RuntimeError):
    """Prometheus could not be found or fetched; the message says what to do."""


@dataclass(frozen=True)
class Tools:
    prometheus: Path
    promtool: Path


def cache_dir() -> Path:
    root = os.environ.get("KUBATCH_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kubatch"
    )
    return Path(root) / "prometheus"


def _pair(directory: Path) -> Tools | None:
    prom, tool = directory / "prometheus", directory / "promtool"
    if all(p.is_file() and os.access(p, os.X_OK) for p in (prom, tool)):
        return Tools(prom, tool)
    return None


def find() -> Tools | None:
    """The two programs if they are already somewhere (no download)."""
    if os.environ.get(ENV_DIR):
        return _pair(Path(os.environ[ENV_DIR]))
    prom, tool = shutil.which("prometheus"), shutil.which("promtool")
    if prom and tool:
        return Tools(Path(prom), Path(tool))
    return _pair(cache_dir() / "usr" / "bin")


def _run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, timeout=600)


def fetch(target: Path | None = None) -> Tools:
    """Download Debian's ``prometheus`` package and unpack it into ``target`` (the cache)."""
    target = target or cache_dir()
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise PrometheusUnavailableError(
            "Prometheus is needed for the dashboard and alert tests: install Debian's "
            f"'prometheus' package, or set {ENV_DIR} to a directory with prometheus and promtool"
        )
    with tempfile.TemporaryDirectory(prefix="kubatch-prometheus-") as tmp:
        got = _run("apt-get", "download", PACKAGE, cwd=Path(tmp))
        if got.returncode != 0:
            update = _run("apt-get", "update", "-qq")
            if update.returncode != 0:
                raise PrometheusUnavailableError(f"apt-get update failed: {update.stderr[-500:]}")
            got = _run("apt-get", "download", PACKAGE, cwd=Path(tmp))
        debs = sorted(Path(tmp).glob(f"{PACKAGE}_*.deb"))
        if got.returncode != 0 or not debs:
            raise PrometheusUnavailableError(
                f"apt-get download {PACKAGE} failed: {got.stderr[-500:]}"
            )
        staging = Path(
            tempfile.mkdtemp(
                prefix="prometheus-", dir=target.parent if target.parent.is_dir() else None
            )
        )
        unpack = _run("dpkg-deb", "-x", str(debs[0]), str(staging))
        if unpack.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise PrometheusUnavailableError(f"dpkg-deb -x failed: {unpack.stderr[-500:]}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(str(staging), str(target))
    tools = _pair(target / "usr" / "bin")
    if tools is None:
        raise PrometheusUnavailableError(f"the {PACKAGE} package had no usr/bin/prometheus")
    return tools


def ensure() -> Tools:
    """The two programs: found (:func:`find`) or fetched once (:func:`fetch`)."""
    return find() or fetch()


def version(tools: Tools) -> str:
    out = _run(str(tools.prometheus), "--version")
    return (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else "?"


# --------------------------------------------------------------------------- the server


class QueryError(RuntimeError):
    """Prometheus answered a query with an error (the message is its ``error``)."""


@dataclass
class PrometheusServer:
    """One Prometheus on ``127.0.0.1:port`` scraping ``targets`` every ``interval`` seconds,
    evaluating ``rule_files`` as often; its data in ``workdir``."""

    workdir: Path
    targets: Sequence[str]
    rule_files: Sequence[Path] = ()
    interval: float = 1.0
    job: str = "kubatch"
    tools: Tools | None = None
    port: int = 0
    child: Child | None = None
    extra_scrape: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        every = f"{self.interval:g}s"
        return {
            "global": {
                "scrape_interval": every,
                "evaluation_interval": every,
                "scrape_timeout": every,
            },
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [
                {"job_name": self.job, "static_configs": [{"targets": list(self.targets)}]},
                *self.extra_scrape,
            ],
        }

    def start(self, timeout: float = 60.0) -> None:
        tools = self.tools or ensure()
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(self.config()))
        self.port = self.port or free_port()
        self.child = Child(
            "prometheus",
            [
                str(tools.prometheus),
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1d",
                "--log.level=warn",
            ],
            self.workdir / "prometheus.log",
        )
        self.child.start()

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    return bool(resp.status == 200)
            except OSError:
                return False

        eventually(
            ready, what="Prometheus to be ready", timeout=timeout, every=0.3, check=self.child.check
        )

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the HTTP API ----------------------------------------------------------------------

    def api(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                doc = json.loads(resp.read())
        except urllib.error.HTTPError as err:
            doc = json.loads(err.read() or b"{}")
        if doc.get("status") != "success":
            raise QueryError(f"{path} {dict(params or {})}: {doc.get('error') or doc}")
        return doc["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query: the result vector (or ``[scalar]``)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", params)
        result: list[dict[str, Any]] = (
            data["result"]
            if data["resultType"] in ("vector", "matrix")
            else [{"metric": {}, "value": data["result"]}]
        )
        return result

    def query_range(self, expr: str, start: float, end: float, step: float = 1.0) -> list[Any]:
        data = self.api(
            "query_range",
            {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"},
        )
        result: list[Any] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def targets_up(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self.api("targets")["activeTargets"]
        return active

    def wait_scraped(self, timeout: float = 30.0) -> None:
        """Until every target was scraped successfully once."""

        def up() -> bool:
            targets = self.targets_up()
            return bool(targets) and all(t.get("health") == "up" for t in targets)

        eventually(up, what="Prometheus to scrape its targets", timeout=timeout, every=0.5)


def promtool(tools: Tools, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``promtool`` (``check rules FILE``, ``test rules FILE``)."""
    return subprocess.run(
        [str(tools.promtool), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kubatch.devkit.prometheus``: make sure both programs are there; print them."""
    del argv
    try:
        tools = ensure()
    except PrometheusUnavailableError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"prometheus: {tools.prometheus} ({version(tools)})\npromtool:   {tools.promtool}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
