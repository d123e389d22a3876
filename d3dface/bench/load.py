"""``python -m d3dface.bench load [--quick]``: many simultaneous requests against the app.

Starts ``space_app.py`` in its own process on a free local port, sends R concurrent
``/reconstruct`` calls through ``gradio_client`` (one client per thread, the example photos in
turn with their masks) and checks that every call completes with the right outputs (N sample
thumbnails, a zip holding every sample's GLB, metrics for N samples). The app's queue runs one
reconstruction at a time and holds the others. Reports the latencies and the server's peak
resident memory (``VmHWM`` of ``/proc/<pid>/status``); writes ``bench/results/load.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from d3dface.bench import add_out_argument, output_folder, write_results

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = Path("bench") / "results"
STARTUP_TIMEOUT_S = 180.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_app(preset: str) -> tuple[subprocess.Popen, str]:
    """``space_app.py`` in a child process with ``preset``; returns it and its URL once it
    answers. Raises RuntimeError when it does not start."""
    port = _free_port()
    env = {
        **os.environ,
        "D3DFACE_APP_PRESET": preset,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "space_app.py")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with status {process.returncode} on start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"the app did not answer on {url} within {STARTUP_TIMEOUT_S:.0f} s")


def peak_memory_mib(pid: int) -> float | None:
    """Peak resident memory of a process in MiB (Linux ``VmHWM``), None where unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def one_request(url: str, index: int, n: int, preset: str) -> dict:
    """One ``/reconstruct`` call; its latency and whether the outputs are right."""
    from gradio_client import Client, handle_file

    examples = json.loads((ROOT / "examples" / "examples.json").read_text())
    example = examples[index % len(examples)]
    clock = time.perf_counter()
    try:
        client = Client(url, verbose=False)
        _, gallery, spread, _, zip_path, metrics = client.predict(
            photo=handle_file(ROOT / "examples" / example["photo"]),
            mask_editor=None,
            mask_file=handle_file(ROOT / "examples" / example["mask"]),
            n=n,
            k=0.5,
            n_sigma=3.0,
            preset=preset,
            seed=index,
            api_name="/reconstruct",
        )
        with zipfile.ZipFile(zip_path) as archive:
            names = set(archive.namelist())
        correct = (
            len(gallery) == n
            and Path(spread).suffix == ".glb"
            and metrics["settings"]["n_samples"] == n
            and all(f"sample_{i:02d}.glb" in names for i in range(n))
        )
        error = None if correct else "wrong outputs"
    except Exception as err:  # every failure of a request is a finding
        correct, error = False, f"{type(err).__name__}: {err}"
    return {
        "request": index,
        "photo": example["photo"],
        "seconds": time.perf_counter() - clock,
        "correct": correct,
        "error": error,
    }


def run(requests: int, n: int, preset: str) -> dict:
    """Start the app, send ``requests`` concurrent calls, stop it; records and summary."""
    process, url = start_app(preset)
    try:
        memory_idle = peak_memory_mib(process.pid)
        clock = time.perf_counter()
        with ThreadPoolExecutor(max_workers=requests) as pool:
            records = list(pool.map(lambda i: one_request(url, i, n, preset), range(requests)))
        wall = time.perf_counter() - clock
        peak = peak_memory_mib(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    latencies = [r["seconds"] for r in records]
    return {
        "records": records,
        "requests": requests,
        "n": n,
        "preset": preset,
        "completed_correctly": sum(r["correct"] for r in records),
        "wall_s": wall,
        "latency_s": {
            "min": min(latencies),
            "median": statistics.median(latencies),
            "max": max(latencies),
        },
        "server_peak_rss_mib": peak,
        "server_rss_after_start_mib": memory_idle,
    }


def to_markdown(results: dict) -> str:
    """The summary and the failures, if any."""
    latency = results["latency_s"]
    lines = [
        "# Concurrent requests against the app",
        "",
        results["description"],
        "",
        "| requests | completed correctly | wall s | latency min / median / max s | server "
        "peak RSS MiB |",
        "| --- | --- | --- | --- | --- |",
        f"| {results['requests']} | {results['completed_correctly']} | {results['wall_s']:.1f} | "
        f"{latency['min']:.1f} / {latency['median']:.1f} / {latency['max']:.1f} | "
        f"{results['server_peak_rss_mib'] or 0:.0f} |",
    ]
    failures = [r for r in results["records"] if not r["correct"]]
    if failures:
        lines += ["", "Failures:", ""] + [
            f"- request {r['request']}: {r['error']}" for r in failures
        ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the load test; exit status 1 when a request did not complete correctly."""
    parser = argparse.ArgumentParser(prog="python -m d3dface.bench load")
    parser.add_argument("--quick", action="store_true", help="4 requests, N = 2 (for tests)")
    parser.add_argument("--requests", type=int, help="concurrent requests (default 20)")
    parser.add_argument("-n", type=int, help="samples per request (default 4; quick 2)")
    parser.add_argument("--preset", default="test", help="app speed preset (default test)")
    add_out_argument(parser)
    args = parser.parse_args(argv)
    args.out = output_folder(args.out, args.quick, RESULTS_DIR)
    requests = args.requests or (4 if args.quick else 20)
    n = args.n or (2 if args.quick else 4)
    load = os.getloadavg()[0]
    results = run(requests, n, args.preset)
    results["description"] = (
        f"{requests} simultaneous /reconstruct calls (gradio_client, one thread each, example "
        f"photos with their masks), N = {n}, preset '{args.preset}', against space_app.py in its "
        f"own process (queue: one reconstruction at a time); {os.cpu_count()} cores, load "
        f"average {load:.2f} before. Peak RSS = the server's VmHWM."
    )
    args.out.mkdir(parents=True, exist_ok=True)
    report = to_markdown(results)
    write_results(args.out, "load", results, report)
    print(report)
    return 0 if results["completed_correctly"] == requests else 1
