"""Benchmarks: ``python -m d3dface.bench <name> [--quick]``, results in ``bench/results/``.

Each benchmark is a module here with a ``main(argv) -> int``; :data:`BENCHMARKS` names them.
"""

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


def write_results(out_dir: Path, name: str, results: dict, report: str) -> None:
    """Write ``<name>.json`` (the figures) and ``<name>.md`` (the report) and print the report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / f"{name}.md").write_text(report)
    print(report)
