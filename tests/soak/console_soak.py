"""The console's soak: a page left open for a long time must not leak memory on either side.

Run outside CI (``make soak-console MINUTES=60``): starts ``kubatch demo --keep`` in its own
state directory (plane, simulated pools, operator, console), opens the overview and a job
list in headless Chromium (both follow the cluster by server-sent events), submits a small
job every ``--every`` seconds so that events keep flowing, and samples once a minute:

- the console: its RSS, open event streams, index size (``/healthz``);
- the browser: each page's JS heap, DOM nodes and event listeners (DevTools
  ``Performance.getMetrics``), and how many times each page swapped its live fragment.

The samples and a summary go to a JSON file (docs/console/soak.json by default); then the
demo is stopped (``kubatch demo --down``). docs/console.md reports a run.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NS = "kubatch-demo"


def kubectl(kubeconfig: Path, *args: str, text: str | None = None) -> None:
    exe = shutil.which("kubectl") or str(
        next(Path.home().joinpath(".cache", "kubatch").glob("kubernetes-*/kubectl"))
    )
    subprocess.run([exe, "--kubeconfig", str(kubeconfig), *args], input=text, check=True,
                   capture_output=True, text=True, timeout=60)  # fmt: skip


def job(name: str) -> str:
    return json.dumps(
        {
            "apiVersion": "kubatch.io/v1alpha1",
            "kind": "BatchJob",
            "metadata": {"name": name},
            "spec": {"jobQueue": "high-priority", "jobDefinition": "soak"},
        }
    )


DEFINITION = json.dumps(
    {
        "apiVersion": "kubatch.io/v1alpha1",
        "kind": "JobDefinition",
        "metadata": {"name": "soak"},
        "spec": {
            "template": {
                "metadata": {"annotations": {"sim.kubatch.io/duration": "3"}},
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox",
                            "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
                        }
                    ]
                },
            }
        },
    }
)


def browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "chromium"
    profile = tempfile.mkdtemp(prefix="kubatch-soak-chromium-")
    for arg in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1000",
        "--js-flags=--expose-gc",
    ):  # fmt: skip
        opts.add_argument(arg)
    return webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))


def page_metrics(driver: Any) -> dict[str, float]:
    driver.execute_cdp_cmd("Performance.enable", {})
    driver.execute_cdp_cmd("HeapProfiler.collectGarbage", {})
    raw = driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]
    wanted = ("JSHeapUsedSize", "JSHeapTotalSize", "Nodes", "JSEventListeners", "Documents")
    out = {m["name"]: m["value"] for m in raw if m["name"] in wanted}
    live = driver.execute_script(
        "var l=document.getElementById('live');return l?l.getAttribute('data-refreshed'):null"
    )
    out["lastRefresh"] = float(live or 0) / 1000
    out["swaps"] = float(driver.execute_script("return window.__swaps || 0"))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=60)
    p.add_argument("--every", type=float, default=10, help="seconds between submitted jobs")
    p.add_argument("--json", default=str(ROOT / "docs" / "console" / "soak.json"))
    args = p.parse_args(argv)
    state = Path(tempfile.mkdtemp(prefix="kubatch-soak-")) / "plane"
    demo = subprocess.run(
        [sys.executable, "-m", "kubatch.cli", "demo", "--keep", "--no-real", "--no-color",
         "--state-dir", str(state)],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    found = re.search(r"web console: (http://127\.0\.0\.1:\d+/)", demo.stdout)
    if demo.returncode not in (0, 1) or not found:
        print(demo.stdout[-3000:], demo.stderr[-3000:], file=sys.stderr)
        return 2
    url, kubeconfig = found.group(1), state / "kubeconfig"
    tabs: dict[str, Any] = {}
    samples: list[dict[str, Any]] = []
    try:
        kubectl(kubeconfig, "-n", NS, "apply", "-f", "-", text=DEFINITION)
        tabs = {"overview": browser(), "jobs": browser()}  # one browser each: separate heaps
        tabs["overview"].get(url)
        tabs["jobs"].get(url + f"jobs?namespace={NS}")
        t0 = time.monotonic()
        n = 0
        next_sample = t0
        while time.monotonic() - t0 < args.minutes * 60:
            kubectl(kubeconfig, "-n", NS, "apply", "-f", "-", text=job(f"soak-{n:05d}"))
            n += 1
            if time.monotonic() >= next_sample:
                with urllib.request.urlopen(url + "healthz", timeout=5) as r:
                    health = json.loads(r.read())
                row: dict[str, Any] = {"minute": round((time.monotonic() - t0) / 60, 2),
                                       "submitted": n, "console": health}  # fmt: skip
                for name, tab in tabs.items():
                    row[name] = page_metrics(tab)
                samples.append(row)
                print(json.dumps(row), flush=True)
                next_sample += 60
            time.sleep(args.every)
    finally:
        for tab in tabs.values():
            tab.quit()
        subprocess.run([sys.executable, "-m", "kubatch.cli", "demo", "--down", "--state-dir",
                        str(state)], cwd=ROOT, check=False, timeout=120)  # fmt: skip
    if len(samples) < 2:
        return 2
    first, last = samples[min(1, len(samples) - 1)], samples[-1]  # after the first minute
    summary = {
        "minutes": args.minutes,
        "jobsSubmitted": samples[-1]["submitted"],
        "consoleRssMiB": [
            round(first["console"]["rssBytes"] / 2**20, 1),
            round(last["console"]["rssBytes"] / 2**20, 1),
        ],
        "consoleStreams": last["console"]["streams"],
        **{
            f"{tab}JsHeapMiB": [
                round(first[tab]["JSHeapUsedSize"] / 2**20, 2),
                round(last[tab]["JSHeapUsedSize"] / 2**20, 2),
            ]
            for tab in ("overview", "jobs")
        },
        **{
            f"{tab}DomNodes": [first[tab]["Nodes"], last[tab]["Nodes"]]
            for tab in ("overview", "jobs")
        },
        **{
            f"{tab}Listeners": [first[tab]["JSEventListeners"], last[tab]["JSEventListeners"]]
            for tab in ("overview", "jobs")
        },
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "samples": samples}, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
