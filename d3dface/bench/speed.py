"""``python -m d3dface.bench speed [--quick]``: seconds per stage and peak memory of the whole
pipeline for N = 1, 4, 8, 16 samples, on the CPU and, on a machine with a CUDA GPU, on it too;
and for N = 8 on the CPU with the same photo enlarged to a phone camera's size (its longer side
:data:`LARGE_PHOTO_SIDE` pixels), which the pipeline works on shrunk
(:mod:`d3dface.perception.working_size`).

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

import cv2
import numpy as np
import torch

from d3dface.bench import add_out_argument, output_folder, write_results

RESULTS_DIR = Path("bench") / "results"
SAMPLE_COUNTS = (1, 4, 8, 16)
STAGES = ("detect", "mask", "fit", "diversity", "export", "total")
LARGE_PHOTO_SIDE = 5120
"""The enlarged photo's longer side: a 16-megapixel phone photo's (4:3)."""
LARGE_PHOTO_N = 8
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
    photo_path: str,
    n: int,
    iterations: int | None,
    threads: int,
    device: str,
    enlarge_to: int | None = None,
) -> dict[str, float]:
    """Run the pipeline on ``device`` on one photo with ``n`` samples (after a warm-up run);
    seconds per stage, peak resident memory (MiB) and, on CUDA, peak allocated GPU memory (MiB).
    ``enlarge_to``: first enlarge the photo (bicubic) so its longer side has this many pixels."""
    torch.set_num_threads(threads)
    from d3dface.pipeline import Diverse3DFace

    photo = masked_photo(Path(photo_path))
    if enlarge_to is not None:
        photo = enlarged(photo, enlarge_to)
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
    timings["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if device == "cuda":
        timings["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    timings.update({f"metric_{k}": v for k, v in result.metrics.items()})
    return timings


def enlarged(photo: np.ndarray, side: int) -> np.ndarray:
    """(H', W', 3) uint8: ``photo`` (H, W, 3) resized (bicubic) to a longer side of ``side``."""
    height, width = photo.shape[:2]
    factor = side / max(height, width)
    size = (round(width * factor), round(height * factor))
    return cv2.resize(photo, size, interpolation=cv2.INTER_CUBIC)


def run(
    photo: Path,
    counts: Sequence[int],
    iterations: int | None,
    threads: int,
    devices: Sequence[str],
    large_side: int,
) -> dict:
    """Time every N on every device in its own process; ``{"rows": {N: timings}}`` for the
    CPU, ``"cuda_rows"`` likewise when "cuda" is among ``devices``, and ``"large_rows"``
    for :data:`LARGE_PHOTO_N` on the CPU with the photo enlarged to ``large_side``."""
    context = multiprocessing.get_context("spawn")
    cases = [(device, n, None) for device in devices for n in counts]
    cases.append(("cpu", LARGE_PHOTO_N, large_side))
    results: dict = {}
    for device, n, enlarge_to in cases:
        key = "large_rows" if enlarge_to else "rows" if device == "cpu" else f"{device}_rows"
        arguments = (str(photo), n, iterations, threads, device, enlarge_to)
        with context.Pool(1) as pool:
            row = results.setdefault(key, {})[str(n)] = pool.apply(time_one, arguments)
        figures = ", ".join(f"{k} {v:.2f}" for k, v in row.items())
        print(f"{device}{f', {enlarge_to} px photo' if enlarge_to else ''}, N = {n}: {figures}")
    return results


def to_markdown(results: dict) -> str:
    """A table of seconds per stage and peak memory per N for each device timed."""
    lines = ["# Pipeline speed and memory", "", results["description"]]
    titles = {
        "rows": "CPU",
        "cuda_rows": f"CUDA ({results.get('gpu', 'GPU')})",
        "large_rows": f"CPU, the photo enlarged to {results.get('large_side')} px",
    }
    for key, title in titles.items():
        if key not in results:
            continue
        gpu = key == "cuda_rows"
        lines += [
            "",
            f"## {title}",
            "",
            "| N | "
            + " | ".join(STAGES)
            + " | peak RSS MiB |"
            + (" peak GPU MiB |" if gpu else ""),
            "| --- |" + " --- |" * (len(STAGES) + 1 + gpu),
        ]
        for n, row in results[key].items():
            cells = [f"{row[stage]:.2f}" for stage in STAGES] + [f"{row['peak_rss_mib']:.0f}"]
            if gpu:
                cells.append(f"{row['peak_cuda_mib']:.0f}")
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write ``speed.json`` / ``speed.md``."""
    parser = argparse.ArgumentParser(prog="python -m d3dface.bench speed")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="N = 2 only, 5 iterations, the enlarged photo 2560 px",
    )
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
    add_out_argument(parser)
    args = parser.parse_args(argv)
    args.out = output_folder(args.out, args.quick, RESULTS_DIR)
    if not args.photo.is_file():
        parser.error(f"photo '{args.photo}' does not exist; pass --photo")
    counts = (2,) if args.quick else SAMPLE_COUNTS
    iterations = 5 if args.quick else None
    large_side = 2560 if args.quick else LARGE_PHOTO_SIDE
    load = os.getloadavg()[0]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not args.cpu_only else [])
    results = run(args.photo, counts, iterations, args.threads, devices, large_side)
    results["large_side"] = large_side
    if "cuda" in devices:
        results["gpu"] = torch.cuda.get_device_name()
    results["description"] = (
        f"Seconds per stage on {' and '.join(d.upper() for d in devices)} ({args.threads} torch "
        f"threads, {os.cpu_count()} cores, "
        f"load average {load:.2f} before / {os.getloadavg()[0]:.2f} after), photo "
        f"{args.photo.name} with a drawn face mask, mask found automatically, default "
        f"settings{' (quick: 5 diversity iterations)' if args.quick else ''}; export = GLB + "
        "PLY + OBJ of every sample and the pictures. Peak RSS = the process's maximum resident "
        f"memory, models and warm-up included. The enlarged photo (N = {LARGE_PHOTO_N}) is "
        "worked on shrunk until its face is 640 px across; its export writes mask.png at its "
        "full size."
    )
    results["threads"] = args.threads
    args.out.mkdir(parents=True, exist_ok=True)
    report = to_markdown(results)
    write_results(args.out, "speed", results, report)
    print(report)
    return 0
