"""d3dface: diverse 3D face reconstructions from one partly hidden face photo."""

__version__ = "0.1.0"
