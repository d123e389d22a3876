"""``python -m d3dface``: see :mod:`d3dface.cli`."""

from d3dface.cli import main

raise SystemExit(main())
