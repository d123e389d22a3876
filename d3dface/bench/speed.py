"""``python -m d3dface.bench speed [--quick]``: seconds per stage and peak memory of the whole
pipeline for N = 1, 4, 8, 16 samples, on the CPU and, on a machine with a CUDA GPU, on it too.

Each N runs in a fresh process (so its peak resident memory is its own): the pipeline is
loaded, run once to warm up (first-call costs: mediapipe's graphs, allocator), then timed on
the same photo (a test photo with a face mask drawn on, the mask found automatically). Stages:
detection, mask, fitting, diversity (from the result's timings) and export (``result.save``
with GLB + PLY + OBJ). Peak memory is the process's maximum resident set size, and the peak
CUDA allocation when the pipeline runs on a GPU.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from d3dface.bench import write_results

RESULTS_DIR = Path("bench") / "results"
SAMPLE_COUNTS = (1, 4, 8, 16)
STAGES = ("detect", "mask", "fit", "diversity", "export", "total")
DEFAULT_PHOTO = Path(__file__).resolve().parents[2].parent / "shared" / "test_images" / "obama.jpg"


def masked_photo(path: Path) -> np.ndarray:
    """(H, W, 3) uint8: the photo with a plain face mask drawn from the nose to the chin."""
    from d3dface.bench.occluders import draw_plain_face_mask
    from d3dface.imageio import load_image
    from d3dface.perception.landmarks import detect_face

    photo = load_image(path)
    margin = int(0.05 * photo.shape[0])
    return draw_plain_face_mask(photo, detect_face(photo).points, chin_margin_px=margin)[0]


def time_one(
    photo_path: str, n: int, iterations: int | None, threads: int, device: str
) -> dict[str, float]:
    """Run the pipeline on ``device`` on one photo with ``n`` samples (after a warm-up run);
    seconds per stage, peak resident memory (MB) and, on CUDA, peak allocated GPU memory (MB)."""
    torch.set_num_threads(threads)
    from d3dface.pipeline import Diverse3DFace

    photo = masked_photo(Path(photo_path))
    pipe = Diverse3DFace.from_pretrained(device=device)
    options = {"n": n, "seed": 0, "iterations": iterations}
    pipe(photo, **{**options, "iterations": 2, "fit_iterations": 2})  # warm-up
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = pipe(photo, **options)
    clock = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        result.save(out, formats=("glb", "ply", "obj"))
    timings = dict(result.timings)
    timings["export"] = time.perf_counter() - clock
    timings["total"] += timings["export"]
    timings["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if device == "cuda":
        timings["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    timings.update({f"metric_{k}": v for k, v in result.metrics.items()})
    return timings


def run(
    photo: Path, counts: Sequence[int], iterations: int | None, threads: int, devices: Sequence[str]
) -> dict:
    """Time every N on every device in its own process; ``{"rows": {N: timings}}`` for the
    CPU and ``"cuda_rows"`` likewise when "cuda" is among ``devices``."""
    context = multiprocessing.get_context("spawn")
    results: dict = {}
    for device in devices:
        rows = results.setdefault("rows" if device == "cpu" else f"{device}_rows", {})
        for n in counts:
            with context.Pool(1) as pool:
                rows[str(n)] = pool.apply(time_one, (str(photo), n, iterations, threads, device))
            figures = ", ".join(f"{k} {v:.2f}" for k, v in rows[str(n)].items())
            print(f"{device}, N = {n}: {figures}")
    return results


def to_markdown(results: dict) -> str:
    """A table of seconds per stage and peak memory per N for each device timed."""
    lines = ["# Pipeline speed and memory", "", results["description"]]
    for key, title in (("rows", "CPU"), ("cuda_rows", f"CUDA ({results.get('gpu', 'GPU')})")):
        if key not in results:
            continue
        gpu = key == "cuda_rows"
        lines += [
            "",
            f"## {title}",
            "",
            "| N | " + " | ".join(STAGES) + " | peak RSS MB |" + (" peak GPU MB |" if gpu else ""),
            "| --- |" + " --- |" * (len(STAGES) + 1 + gpu),
        ]
        for n, row in results[key].items():
            cells = [f"{row[stage]:.2f}" for stage in STAGES] + [f"{row['peak_rss_mb']:.0f}"]
            if gpu:
                cells.append(f"{row['peak_cuda_mb']:.0f}")
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write ``speed.json`` / ``speed.md``."""
    parser = argparse.ArgumentParser(prog="python -m d3dface.bench speed")
    parser.add_argument("--quick", action="store_true", help="N = 2 only, 5 iterations")
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO, help="the photo to time")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1, d3dface's reproducible default; see d3dface/__init__.py)",
    )
    parser.add_argument(
        "--cpu-only", action="store_true", help="skip the CUDA rows on a machine with a GPU"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="output directory")
    args = parser.parse_args(argv)
    if not args.photo.is_file():
        parser.error(f"photo '{args.photo}' does not exist; pass --photo")
    counts = (2,) if args.quick else SAMPLE_COUNTS
    iterations = 5 if args.quick else None
    load = os.getloadavg()[0]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not args.cpu_only else [])
    results = run(args.photo, counts, iterations, args.threads, devices)
    if "cuda" in devices:
        results["gpu"] = torch.cuda.get_device_name()
    results["description"] = (
        f"Seconds per stage on {' and '.join(d.upper() for d in devices)} ({args.threads} torch "
        f"threads, {os.cpu_count()} cores, "
        f"load average {load:.2f} before / {os.getloadavg()[0]:.2f} after), photo "
        f"{args.photo.name} with a drawn face mask, mask found automatically, default "
        f"settings{' (quick: 5 diversity iterations)' if args.quick else ''}; export = GLB + "
        "PLY + OBJ of every sample and the pictures. Peak RSS = the process's maximum resident "
        "memory, models and warm-up included."
    )
    results["threads"] = args.threads
    args.out.mkdir(parents=True, exist_ok=True)
    report = to_markdown(results)
    write_results(args.out, "speed", results, report)
    print(report)
    return 0
