"""Mesh-VAE: a fully convolutional vcConv autoencoder of face meshes (paper Sec. 2.2).

- :mod:`~d3dface.vae.structure`: pooling levels and neighbourhoods sampled from the template.
- :mod:`~d3dface.vae.layers`: vcConv, density pooling, residual blocks.
- :mod:`~d3dface.vae.model`: :class:`MeshVAE` (configs ``paper`` and ``lite``).
- :mod:`~d3dface.vae.data`: training meshes and masks sampled from the face model.
- :mod:`~d3dface.vae.train`: the training loop and its command line.
"""

from d3dface.vae.model import CONFIGS, MeshVAE, VAEConfig, VAEOutput, vae_config
from d3dface.vae.structure import MeshStructure, StructureConfig, build_structure

__all__ = [
    "CONFIGS",
    "MeshStructure",
    "MeshVAE",
    "StructureConfig",
    "VAEConfig",
    "VAEOutput",
    "build_structure",
    "vae_config",
]
