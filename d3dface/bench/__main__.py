"""``python -m d3dface.bench <name> [options]``: run one benchmark (see :data:`BENCHMARKS`)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from d3dface.bench import BENCHMARKS


def main(argv: Sequence[str] | None = None) -> int:
    """Hand the arguments after the benchmark's name to that benchmark's ``main``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in BENCHMARKS:
        names = ", ".join(sorted(BENCHMARKS))
        print(f"usage: python -m d3dface.bench {{{names}}} [options]", file=sys.stderr)
        return 2
    module = importlib.import_module(BENCHMARKS[argv[0]])
    return module.main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
