"""Dashboard overhead: the server's CPU per viewer per minute while a run trains, and that run's throughput with 0 and 4 viewers against the CLI alone.

    python -m bench.dashboard_overhead [--device cpu|cuda] [--threads 1] [--viewers 4] [--rounds 2]
                                       [--epochs E] [--out FILE.json] [--quick]

Target (on a GPU): a dashboard-launched run with 4 viewers keeps >= 0.95 of the CLI's
images/s. On the 2-core CPU the browsers' own CPU competes with the training for the cores, so
there the ratio measures the whole machine, browsers included; their CPU is reported beside it.

How: `streamlit run dashboard/app.py` as users start it (tests/harness: .streamlit/config.toml, 127.0.0.1) on a
free port with its own WRN_RUNS_DIR (and OMP_NUM_THREADS = --threads, which its training processes inherit). For each dashboard run a
headless chromium page (playwright, Debian's /usr/bin/chromium) opens the Train page, picks the
device, names the run and presses Launch: the form's default preset (the Quick CPU demo, WRN-10-1
on 3,000 synthetic images, 8 epochs), trained by the job manager as `python -m wrn_core resume
NAME` in its own process. With 0 viewers that page closes once Launched shows; with V viewers it
stays and V-1 more pages open the Train page and watch the run (each page's live view refreshes
every second). The CLI run is `python -m wrn_core train --preset quick-cpu --device D` (the same
config; the benchmark checks config.json field for field, lr and weight decay as effective values).

Measured per run, from all viewers attached to the run's end:
- the server process's CPU seconds (psutil user + system of the streamlit pid, its children
  excluded), per minute; per viewer = (CPU/min with V viewers - CPU/min with 0) / V;
- the browsers' CPU seconds (every chromium process under this one), per minute;
- images/s from the run's metrics.jsonl `step` records (bench.common.rates_from_points: windows of
  log_every steps, the first window and epoch-crossing windows dropped, and for a dashboard run the
  windows logged before every viewer was attached), median of the windows.
Rounds alternate the order (CLI, 0 viewers, V viewers; then the reverse); windows pool over rounds.

Needs streamlit, plotly, playwright and chromium: on a machine without them (the GPU machine) it
stops with one line and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cli_runs import run_rates, run_timed, subprocess_env, wrn_command
from bench.common import RESULTS_DIR, environment, median, write_json
from tests.harness.browser import CHROMIUM, chromium, new_page, pick, settle
from tests.harness.server import app_exceptions, start_streamlit, stop_streamlit

REQUIRED = ("streamlit", "plotly", "playwright", "psutil")
RATIO_TARGET = 0.95  # dashboard-launched with 4 viewers / CLI alone, on a GPU
RUN_TIMEOUT_S = 900  # one training run, seconds
SERVER_START_S = 90  # until the server answers its health check, seconds
PAGE_TIMEOUT_MS = 60_000  # one page action or expectation, milliseconds
SELECT_ATTEMPTS = 5  # tries to open the device box and pick an option


def missing_requirements() -> list[str]:
    """What this benchmark needs and this machine lacks: Python packages, the chromium binary."""
    missing = []
    for name in REQUIRED:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a module set to None in sys.modules, a broken package
            found = False
        if not found:
            missing.append(name)
    if not Path(CHROMIUM).exists():
        missing.append(CHROMIUM)
    return missing


class Server:
    """The dashboard as users start it (tests/harness: .streamlit/config.toml, 127.0.0.1), its runs in runs_dir,
    its output in a log file; the training processes it starts get `threads` threads."""

    def __init__(self, runs_dir: Path, log_path: Path, threads: int | None) -> None:
        self.log_path = log_path
        self.proc, self.url, self.port = start_streamlit(runs_dir, log_path, env=subprocess_env(threads),
                                                         timeout_s=SERVER_START_S)
        import psutil

        self.process = psutil.Process(self.proc.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the server process itself (not of the training processes it started)."""
        times = self.process.cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        stop_streamlit(self.proc)


def browser_cpu_seconds() -> dict[int, float]:
    """CPU seconds so far of each chromium process under this one (playwright's browser, its renderers), by pid."""
    import psutil

    seconds = {}
    for child in psutil.Process().children(recursive=True):
        try:
            if "chrom" in child.name().lower():
                times = child.cpu_times()
                seconds[child.pid] = times.user + times.system
        except psutil.Error:  # a renderer that just ended
            pass
    return seconds


def browser_cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the chromium processes spent between two readings; a process that ended in between counts 0."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def open_train_page(browser: Any, url: str) -> tuple[Any, Any]:
    """A fresh browser context (its own Streamlit session) on the Train page; (context, page)."""
    from playwright.sync_api import expect

    page = new_page(browser, 1500, 1100, PAGE_TIMEOUT_MS)
    page.goto(f"{url}/train")
    expect(page.get_by_role("heading", name="Train", exact=True).first).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Launch")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    settle(page)
    return page.context, page


def launch_from_page(page: Any, name: str, device: str, epochs: int | None) -> None:
    """Fill the Train page's form (device, epochs, run name) over the default preset and press Launch."""
    import re

    from playwright.sync_api import expect

    pick(page, "Device", re.compile(rf"^{re.escape(device)}\b"), attempts=SELECT_ATTEMPTS)
    expect(page.get_by_role("combobox", name="Device")).to_have_value(re.compile(rf"^{re.escape(device)}\b"))
    if epochs is not None:
        field = page.get_by_label("epochs", exact=True)
        field.fill(str(epochs))
        field.press("Enter")
        settle(page)
    field = page.get_by_label("run name (optional)")
    field.fill(name)
    field.press("Enter")
    settle(page)
    page.get_by_role("button", name="Launch").click()
    expect(page.get_by_text(f"Launched {name}")).to_be_visible(timeout=PAGE_TIMEOUT_MS)


def wait_finished(runs_dir: Path, name: str, timeout_s: float = RUN_TIMEOUT_S) -> dict[str, Any]:
    """Poll status.json until the run has ended; its status (RuntimeError unless finished)."""
    from wrn_core.store import RunStore

    store = RunStore(runs_dir)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if store.exists(name):
            status = store.get(name).read_status()
            if status.get("status") not in ("queued", "running", None):
                if status["status"] != "finished":
                    log = store.get(name).path / "job.log"
                    raise RuntimeError(f"{name} ended {status['status']}: {status.get('message')}\n"
                                       f"{log.read_text()[-2000:] if log.exists() else ''}")
                return status
        time.sleep(0.25)
    raise RuntimeError(f"{name} did not finish within {timeout_s:.0f} s")


def _last_step(runs_dir: Path, name: str) -> int:
    """The last step the run has logged so far (0 before its first point)."""
    from wrn_core.store import RunStore

    store = RunStore(runs_dir)
    if not store.exists(name):
        return 0
    return max((int(r["step"]) for r in store.get(name).read_metrics() if r.get("kind") == "step"), default=0)


def dashboard_run(server: Server, browser: Any, runs_dir: Path, name: str, viewers: int, device: str,
                  epochs: int | None, warmup: int) -> dict[str, Any]:
    """Launch from the Train page, keep `viewers` pages watching, measure until the run ends."""
    from playwright.sync_api import expect

    contexts = []
    try:
        context, page = open_train_page(browser, server.url)
        contexts.append(context)
        launch_from_page(page, name, device, epochs)
        if viewers == 0:
            context.close()
            contexts.clear()
        for _ in range(max(0, viewers - 1)):
            context, page = open_train_page(browser, server.url)
            contexts.append(context)
        for context in contexts:
            # Each viewer's live view shows the run it watches in its selector: this run, the newest.
            expect(context.pages[0].get_by_text(name).first).to_be_visible(timeout=PAGE_TIMEOUT_MS)
        wall0, server0, browsers0 = time.perf_counter(), server.cpu_seconds(), browser_cpu_seconds()
        # Windows count from here on: the steps trained before every viewer was attached saw fewer of them.
        from_step = _last_step(runs_dir, name)
        status = wait_finished(runs_dir, name)
        wall = time.perf_counter() - wall0
        server_cpu, browsers_cpu = server.cpu_seconds() - server0, browser_cpu_delta(browsers0, browser_cpu_seconds())
    finally:
        for context in contexts:
            context.close()
    from wrn_core.store import RunStore

    run = RunStore(runs_dir).get(name)
    rates = run_rates(run, max(warmup, from_step))
    return {
        "mode": f"dashboard-{viewers}", "viewers": viewers, "rates": rates, "median_img_s": median(rates),
        "from_step": max(warmup, from_step),
        "measured_s": wall, "server_cpu_s": server_cpu, "server_cpu_s_per_min": 60 * server_cpu / wall,
        "browsers_cpu_s": browsers_cpu, "browsers_cpu_s_per_min": 60 * browsers_cpu / wall,
        "device": status.get("device"), "config": run.read_config().to_dict(),
    }


def cli_run(runs_dir: Path, name: str, device: str, epochs: int | None, threads: int | None, warmup: int) -> dict[str, Any]:
    """The same preset trained by `python -m wrn_core train --preset quick-cpu` alone."""
    from wrn_core.store import RunStore

    args = ["train", "--preset", "quick-cpu", "--device", device, "--runs-dir", str(runs_dir), "--name", name, "--quiet"]
    if epochs is not None:
        args += ["--epochs", str(epochs)]
    timed = run_timed(wrn_command(args), subprocess_env(threads), RUN_TIMEOUT_S)
    run = RunStore(runs_dir).get(name)
    status = run.read_status()
    if status.get("status") != "finished":
        raise RuntimeError(f"{name} ended {status.get('status')}: {status.get('message')}")
    rates = run_rates(run, warmup)
    return {"mode": "cli", "viewers": None, "rates": rates, "median_img_s": median(rates), "measured_s": timed.wall_s,
            "device": status.get("device"), "config": run.read_config().to_dict()}


def config_differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Fields whose values differ between two config.json dicts, lr and weight decay compared as effective values."""
    from wrn_core.config import TrainConfig

    def normal(data: dict[str, Any]) -> dict[str, Any]:
        config = TrainConfig.from_dict(data)
        config = config.replace(lr=config.effective_lr, weight_decay=config.effective_weight_decay)
        return config.to_dict()

    x, y = normal(a), normal(b)
    return {key: [x.get(key), y.get(key)] for key in sorted(set(x) | set(y)) if x.get(key) != y.get(key)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="the device box's choice: cpu, or cuda (its first GPU, cuda:0)")
    parser.add_argument("--viewers", type=int, default=4, help="browser pages watching the run in the viewed mode (default 4)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of CLI, 0 viewers, V viewers (default 2; 1 with --quick)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs instead of the preset's 8 (default: 8; 2 with --quick)")
    parser.add_argument("--threads", type=int, default=1,
                        help="OMP_NUM_THREADS of the training processes, dashboard and CLI alike (default 1: this CPU is shared)")
    parser.add_argument("--out", help="JSON file (default bench/results/dashboard-overhead-<device>[-quick].json)")
    parser.add_argument("--quick", action="store_true", help="one round, 2 epochs, 1 viewer: checks the path")
    args = parser.parse_args(argv)
    missing = missing_requirements()
    if missing:
        print(f"bench.dashboard_overhead needs {', '.join(missing)}, missing here (it runs where the dashboard runs, "
              f"not on the GPU machine)", file=sys.stderr)
        return 2
    import torch
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench.dashboard_overhead: --device cuda asked for, but torch sees no CUDA GPU", file=sys.stderr)
        return 2
    device = "cuda:0" if args.device == "cuda" else "cpu"
    if args.threads:
        torch.set_num_threads(args.threads)  # only so that the environment facts show the training processes' count
    viewers = 1 if args.quick else args.viewers
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 2)
    epochs = args.epochs if args.epochs is not None else (2 if args.quick else None)
    warmup = 5  # one window of the preset's log_every = 5 steps: the first window holds the first step's costs
    out = Path(args.out) if args.out else RESULTS_DIR / f"dashboard-overhead-{args.device}{'-quick' if args.quick else ''}.json"
    facts = environment(torch.device(args.device))
    modes = ["cli", "dashboard-0", f"dashboard-{viewers}"]
    result: dict[str, Any] = {
        "kind": "dashboard_overhead", "device": args.device, "device_name": facts["device_name"], "torch": facts["torch"],
        "date": facts["date"], "cpu_count": os.cpu_count(), "threads": args.threads, "viewers": viewers, "epochs": epochs,
        "quick": args.quick, "preset": "Quick CPU demo", "ratio_target": RATIO_TARGET, "runs": [],
        "method": __doc__.split("How: ", 1)[1].split("\n\nNeeds", 1)[0].replace("\n", " "),
    }
    print(f"dashboard overhead on {facts['device_name']}, torch {facts['torch']}: the Quick CPU demo on {device}, "
          f"CLI vs dashboard with 0 and {viewers} viewer(s), {rounds} round(s)", flush=True)
    with tempfile.TemporaryDirectory(prefix="wrn-bench-dash-") as tmp:
        runs_dir, cli_dir = Path(tmp) / "runs", Path(tmp) / "cli-runs"
        server = Server(runs_dir, Path(tmp) / "streamlit.log", args.threads)
        try:
            with chromium() as browser:
                for index in range(rounds):
                    order = modes if index % 2 == 0 else list(reversed(modes))
                    print(f"  round {index + 1}/{rounds} ({', '.join(order)})", flush=True)
                    for mode in order:
                        name = f"{mode}-{index}"
                        if mode == "cli":
                            entry = cli_run(cli_dir, name, device, epochs, args.threads, warmup)
                        else:
                            entry = dashboard_run(server, browser, runs_dir, name, int(mode.split("-")[1]), device,
                                                  epochs, warmup)
                        entry["round"] = index
                        result["runs"].append(entry)
                        print(f"    {name}: median {entry['median_img_s'] or 0:.0f} img/s over {len(entry['rates'])} windows"
                              + (f", server {entry['server_cpu_s_per_min']:.1f} CPU s/min, browsers "
                                 f"{entry['browsers_cpu_s_per_min']:.1f} CPU s/min" if mode != "cli" else ""), flush=True)
                    _summarise(result, modes)
                    write_json(out, result)
        finally:
            server.stop()
        result["server_log_tracebacks"] = app_exceptions(Path(tmp) / "streamlit.log")
    write_json(out, result)
    print()
    print(format_table(result))
    print(f"\nwrote {out}")
    return 0


def _summarise(result: dict[str, Any], modes: list[str]) -> None:
    """Pooled windows per mode, ratios against the CLI, server CPU per viewer per minute, config check."""
    runs = result["runs"]
    pooled = {mode: [r for run in runs if run["mode"] == mode for r in run["rates"]] for mode in modes}
    medians = {mode: median(rates) for mode, rates in pooled.items()}
    cli = medians["cli"]
    result["img_s"] = medians
    result["ratios"] = {mode: (medians[mode] / cli if medians[mode] and cli else None) for mode in modes if mode != "cli"}

    def mean_of(mode: str, key: str) -> float | None:
        values = [run[key] for run in runs if run["mode"] == mode]
        return sum(values) / len(values) if values else None

    viewed = modes[2]
    idle, busy = mean_of("dashboard-0", "server_cpu_s_per_min"), mean_of(viewed, "server_cpu_s_per_min")
    result["server_cpu_s_per_min"] = {"dashboard-0": idle, viewed: busy}
    result["browsers_cpu_s_per_min"] = {"dashboard-0": mean_of("dashboard-0", "browsers_cpu_s_per_min"),
                                        viewed: mean_of(viewed, "browsers_cpu_s_per_min")}
    viewers = result["viewers"]
    result["server_cpu_s_per_viewer_per_min"] = (busy - idle) / viewers if idle is not None and busy is not None and viewers else None
    reference = next((run["config"] for run in runs if run["mode"] == "cli"), None)
    result["config_differences"] = {
        f"{run['mode']}-{run['round']}": config_differences(reference, run["config"]) for run in runs
        if reference is not None and run["mode"] != "cli"
    }


def format_table(result: dict[str, Any]) -> str:
    lines = [f"{'round':>5} {'mode':<12} {'median img/s':>12} {'windows':>7} {'server CPU s/min':>16} {'browsers CPU s/min':>18}"]
    for run in result["runs"]:
        server = "-" if run["mode"] == "cli" else f"{run['server_cpu_s_per_min']:.2f}"
        browsers = "-" if run["mode"] == "cli" else f"{run['browsers_cpu_s_per_min']:.2f}"
        lines.append(f"{run['round'] + 1:>5} {run['mode']:<12} {run['median_img_s'] or 0:>12.0f} {len(run['rates']):>7} "
                     f"{server:>16} {browsers:>18}")
    ratios = ", ".join(f"{mode} {'-' if v is None else format(v, '.3f')}" for mode, v in result.get("ratios", {}).items())
    per_viewer = result.get("server_cpu_s_per_viewer_per_min")
    lines.append(f"images/s against the CLI alone: {ratios} (target on a GPU >= {RATIO_TARGET} with 4 viewers)")
    lines.append(f"server CPU per viewer per minute: {'-' if per_viewer is None else format(per_viewer, '.2f')} s "
                 f"({result['cpu_count']} CPUs; the browsers run on the same CPUs)")
    differing = {k: v for k, v in result.get("config_differences", {}).items() if v}
    lines.append("configs: dashboard runs equal the CLI run" if not differing else f"configs differ: {differing}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
