"""Benchmarks: ``python -m d3dface.bench <name> [--quick]``, results in ``bench/results/``.

Each benchmark is a module here with a ``main(argv) -> int``; :data:`BENCHMARKS` names them.
"""

BENCHMARKS = {
    "fitting": "d3dface.bench.fitting",
    "vae": "d3dface.bench.vae",
}
"""Benchmark name -> module holding its ``main``."""
