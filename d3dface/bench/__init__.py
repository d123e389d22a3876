"""Benchmarks: ``python -m d3dface.bench <name> [--quick]``, results in ``bench/results/``
(a ``--quick`` run's in ``bench/results/quick/``, so it never replaces a full run's figures).

Each benchmark is a module here with a ``main(argv) -> int``; :data:`BENCHMARKS` names them.
"""

import argparse
import json
from pathlib import Path

BENCHMARKS = {
    "diversity": "d3dface.bench.diversity",
    "fit-errors": "d3dface.bench.fit_errors",
    "fitting": "d3dface.bench.fitting",
    "load": "d3dface.bench.load",
    "occlusion": "d3dface.bench.occlusion",
    "speed": "d3dface.bench.speed",
    "vae": "d3dface.bench.vae",
}
"""Benchmark name -> module holding its ``main``."""

QUICK_SUBFOLDER = "quick"
"""Where in the results folder a ``--quick`` run writes when no ``--out`` is given."""


def add_out_argument(parser: argparse.ArgumentParser) -> None:
    """``--out DIR`` on a benchmark's ``parser``; :func:`output_folder` gives its default."""
    parser.add_argument(
        "--out",
        type=Path,
        help="output directory (default: bench/results/, with --quick bench/results/quick/)",
    )


def output_folder(out: Path | None, quick: bool, results_dir: Path) -> Path:
    """The folder a benchmark writes into: ``out`` when given, else ``results_dir`` for a
    full run and its ``quick/`` subfolder for a ``--quick`` one, so that a smoke run never
    replaces the committed figures that the README and model card quote."""
    if out is not None:
        return out
    return results_dir / QUICK_SUBFOLDER if quick else results_dir


def write_results(out_dir: Path, name: str, results: dict, report: str) -> None:
    """Write ``<name>.json`` (the figures) and ``<name>.md`` (the report) and print the report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / f"{name}.md").write_text(report)
    print(report)
