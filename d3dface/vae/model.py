"""The Mesh-VAE (paper Sec. 2.2, Tables 3-4): a fully convolutional vcConv autoencoder.

Encoder (Table 3), for widths ``w0..w5`` and latent channels ``c``::

    (V, 4) -down0-> (n1, w0) -same1-> (n1, w1) -down1-> (n2, w2) -same2-> (n2, w3)
           -down2-> (n3, w4) -same3-> (n3, w5) = feats;  feats -down3-> (n4, c) twice: mu, logvar

Decoder (Table 4) mirrors it: ``(n4, c) -up3-> (n3, w5) -same3-> (n3, w4) -up2-> ...
-same1-> (n1, w0) -up0-> (V, 3)``. Every block is a :class:`~d3dface.vae.layers.VCBlock`
with ELU, except the mu / log-variance heads and the decoder's output block (no activation,
so outputs are unbounded). The paper's widths are ``32..1024`` with ``c = 64`` (config
``paper``); ``lite`` narrows them for CPU use.

Input and output are vertex offsets from the template, normalised per vertex and axis:
``x = (vertices - template - offset_mean) / offset_std``, statistics of the training
meshes stored with the weights. The encoder also sees which vertices are hidden: their
offsets are zeroed and a fourth channel is 1 there (0 elsewhere), so hidden positions can
not influence the code and the encoder knows what it was not shown.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from d3dface.hub import (
    CONFIG_NAME,
    ConfigEntries,
    WeightsError,
    descriptive_entries,
    load_weights,
    one_line,
    require_tensors,
    require_vertex_count,
    resolve_model_folder,
    save_weights,
)
from d3dface.torch_state import torch_as_written
from d3dface.vae.layers import VCBlock, batch_major, vertex_major
from d3dface.vae.structure import MeshStructure, StructureConfig, build_structure

KIND = "d3dface.mesh_vae"
INPUT_CHANNELS = 4  # normalised offset xyz + hidden flag


@dataclass(frozen=True)
class VAEConfig:
    """Architecture of a Mesh-VAE.

    Attributes:
        name: config name (``paper`` or ``lite``).
        widths: encoder block widths w0..w5, one per block before the heads; the decoder
            uses them in reverse.
        latent_channels: channels per coarsest vertex; the code is (n_coarsest, channels).
        n_bases: shared weight bases M per vcConv.
        structure: how levels and neighbourhoods are sampled from the template.
        seed: seed of the weight initialisation.
    """

    name: str
    widths: tuple[int, ...]
    latent_channels: int = 64
    n_bases: int = 17
    structure: StructureConfig = field(default_factory=StructureConfig)
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


#: ``paper``: Tables 3-4 widths; stride-1 kernels of ~14-19 neighbours (radius 3 rho),
#: unpooling from ~6-8 coarse neighbours (radius 2 rho).
#: ``lite``: widths 8-16-16-32-32-64; stride-1 kernels of ~6-8 neighbours (radius 2 rho),
#: unpooling from ~3-4 coarse neighbours (radius 1.5 rho): the same code size (10 x 64) at
#: about a tenth of the parameters (3.4M against 33.4M), for CPU training and use.
CONFIGS: dict[str, VAEConfig] = {
    "paper": VAEConfig(
        "paper",
        widths=(32, 64, 128, 256, 512, 1024),
        structure=StructureConfig(same_radius=3.0),
    ),
    "lite": VAEConfig(
        "lite", widths=(8, 16, 16, 32, 32, 64), structure=StructureConfig(up_radius=1.5)
    ),
}


def vae_config(name: str) -> VAEConfig:
    """The named architecture; KeyError lists the known names."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise KeyError(f"no Mesh-VAE config '{name}'; choose one of {sorted(CONFIGS)}") from None


class VAEOutput(NamedTuple):
    """Reconstruction (B, V, 3) in metres, and the posterior mean / log-variance (B, N, C)."""

    vertices: Tensor
    mu: Tensor
    logvar: Tensor


class MeshVAE(nn.Module):
    """Mesh-VAE over a fixed template topology; codes are (n_coarsest, latent_channels)."""

    def __init__(
        self,
        config: VAEConfig,
        structure: MeshStructure,
        template: Tensor,
        faces: Tensor,
        offset_mean: Tensor | None = None,
        offset_std: Tensor | None = None,
    ) -> None:
        """Build the blocks; weights are initialised from ``config.seed``.

        Args:
            config: architecture.
            structure: levels and neighbourhoods of ``template``.
            template: (V, 3) mean mesh, metres.
            faces: (F, 3) triangles.
            offset_mean: (V, 3) mean training offset from the template (default 0).
            offset_std: (V, 3) its standard deviation (default 1).
        """
        super().__init__()
        n_levels = structure.n_levels
        if len(config.widths) != 2 * (n_levels - 1):
            raise ValueError(
                f"{n_levels} pooling levels need {2 * (n_levels - 1)} widths, got {config.widths}"
            )
        if structure.level_sizes[0] != template.shape[0]:
            raise ValueError("structure and template disagree on the vertex count")
        structure.check()
        for name, given in (("offset_mean", offset_mean), ("offset_std", offset_std)):
            if given is not None and given.shape != template.shape:
                raise ValueError(
                    f"{name} is {tuple(given.shape)} but the template is {tuple(template.shape)}"
                )
        if faces.ndim != 2 or faces.shape[1] != 3 or faces.numel() == 0:
            raise ValueError(f"faces must be (F, 3) triangles, got {tuple(faces.shape)}")
        if faces.min() < 0 or faces.max() >= template.shape[0]:
            raise ValueError("faces index a vertex that the template does not have")
        self.config = config
        self.structure = structure
        # descriptive config.json entries (e.g. ``training``) kept from loading to saving
        self.extra_config: dict[str, Any] = {}
        self.register_buffer("template", template.float())
        self.register_buffer("faces", faces.long())
        zeros = torch.zeros_like(self.template)
        self.register_buffer("offset_mean", zeros if offset_mean is None else offset_mean.float())
        self.register_buffer(
            "offset_std", torch.ones_like(zeros) if offset_std is None else offset_std.float()
        )
        generator = torch.Generator().manual_seed(config.seed)
        hoods = structure.neighbourhoods

        def block(name: str, in_c: int, out_c: int, activate: bool = True) -> VCBlock:
            pooled = not name.startswith("same")
            return VCBlock(
                in_c, out_c, hoods[name], pooled, config.n_bases, generator, activate=activate
            )

        channels = [INPUT_CHANNELS, *config.widths]
        encoder = []
        for level in range(n_levels - 1):
            encoder.append(block(f"down{level}", channels[2 * level], channels[2 * level + 1]))
            encoder.append(
                block(f"same{level + 1}", channels[2 * level + 1], channels[2 * level + 2])
            )
        self.encoder = nn.Sequential(*encoder)
        head = f"down{n_levels - 1}"
        self.mu_head = block(head, channels[-1], config.latent_channels, activate=False)
        self.logvar_head = block(head, channels[-1], config.latent_channels, activate=False)
        channels = [config.latent_channels, *reversed(config.widths)]
        decoder = []
        for step, level in enumerate(range(n_levels - 1, 0, -1)):
            decoder.append(block(f"up{level}", channels[2 * step], channels[2 * step + 1]))
            decoder.append(block(f"same{level}", channels[2 * step + 1], channels[2 * step + 2]))
        decoder.append(block("up0", channels[-1], 3, activate=False))
        self.decoder = nn.Sequential(*decoder)

    @classmethod
    def from_template(
        cls,
        config: VAEConfig | str,
        template: Tensor,
        faces: Tensor,
        offset_mean: Tensor | None = None,
        offset_std: Tensor | None = None,
    ) -> MeshVAE:
        """A freshly initialised Mesh-VAE whose structure is sampled from ``template``."""
        config = vae_config(config) if isinstance(config, str) else config
        structure = build_structure(template, faces, config.structure)
        return cls(config, structure, template, faces, offset_mean, offset_std)

    # ------------------------------------------------------------------ sizes
    @property
    def n_vertices(self) -> int:
        return self.template.shape[0]

    @property
    def latent_shape(self) -> tuple[int, int]:
        """(coarsest vertex count, latent channels), e.g. (10, 64)."""
        return self.structure.level_sizes[-1], self.config.latent_channels

    # ------------------------------------------------------------------ maps
    def normalise(self, vertices: Tensor) -> Tensor:
        """(B, V, 3) vertices in metres -> (B, V, 3) normalised offsets."""
        return (vertices - self.template - self.offset_mean) / self.offset_std

    def denormalise(self, offsets: Tensor) -> Tensor:
        """(B, V, 3) normalised offsets -> (B, V, 3) vertices in metres."""
        return self.template + self.offset_mean + offsets * self.offset_std

    def encode(self, vertices: Tensor, vertex_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Posterior of meshes, some vertices possibly hidden.

        Args:
            vertices: (B, V, 3) in metres.
            vertex_mask: (B, V) bool, True where the vertex is hidden (its position is not
                used at all), or None when every vertex is shown.

        Returns:
            mu, logvar: (B, N, C) each, ``(N, C) = latent_shape``.
        """
        offsets = self.normalise(vertices)
        if vertex_mask is None:
            hidden = torch.zeros_like(offsets[..., :1])
        else:
            hidden = vertex_mask.to(offsets.dtype)[..., None]
            offsets = torch.where(vertex_mask[..., None], 0.0, offsets)
        features = self.encoder(vertex_major(torch.cat([offsets, hidden], dim=-1)))
        return batch_major(self.mu_head(features)), batch_major(self.logvar_head(features))

    def decode(self, z: Tensor) -> Tensor:
        """(B, N, C) codes -> (B, V, 3) vertices in metres."""
        return self.denormalise(batch_major(self.decoder(vertex_major(z))))

    def forward(
        self,
        vertices: Tensor,
        vertex_mask: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> VAEOutput:
        """Encode and decode; samples ``z = mu + sigma * eps`` with ``generator`` when one is
        given (training), else decodes ``mu`` (deterministic reconstruction)."""
        mu, logvar = self.encode(vertices, vertex_mask)
        z = mu
        if generator is not None:
            noise = torch.randn(mu.shape, generator=generator, device=generator.device)
            z = mu + noise.to(mu.device) * torch.exp(0.5 * logvar)
        return VAEOutput(self.decode(z), mu, logvar)

    # ------------------------------------------------------------------ storage
    def save_pretrained(self, directory: str | Path, extra_config: dict | None = None) -> Path:
        """Write ``model.safetensors`` (weights, buffers, structure) + ``config.json``; the
        config keeps the descriptive entries the model was loaded with (``self.extra_config``,
        e.g. ``training``), updated by ``extra_config``."""
        tensors = {**self.state_dict(), **self.structure.to_tensors()}
        config = {**self.own_config(), **self.extra_config, **(extra_config or {})}
        return save_weights(directory, tensors, config, KIND)

    def own_config(self) -> dict[str, Any]:
        """The config entries :meth:`save_pretrained` writes from the model itself
        (architecture and sizes); the others are descriptive (``self.extra_config``)."""
        return {
            "architecture": self.config.to_dict(),
            "n_vertices": self.n_vertices,
            "latent_shape": list(self.latent_shape),
            "level_sizes": self.structure.level_sizes,
            "n_parameters": sum(p.numel() for p in self.parameters()),
        }

    @classmethod
    @torch_as_written()
    def from_pretrained(cls, path_or_repo: str | Path, **hub_kwargs: Any) -> MeshVAE:
        """Load from a directory or a Hub repo id (``hub_kwargs``: revision, cache_dir, token,
        subfolder, force_download); given a pipeline's (the shipped ``checkpoints/``, the
        published Hub repo), the Mesh-VAE its config.json names. WeightsError when it is
        unusable: a config entry of the wrong type, or weights that do not fit the config or
        each other."""
        directory = resolve_model_folder(path_or_repo, "mesh_vae", **hub_kwargs)
        tensors, raw = load_weights(directory, KIND)
        require_tensors(tensors, ["template", "faces", "offset_mean", "offset_std"], directory)
        entries = ConfigEntries(raw, directory / CONFIG_NAME)
        require_vertex_count(entries, tensors["template"], directory)
        config = architecture_from_config(entries.section("architecture"))
        try:
            structure = MeshStructure.from_tensors(tensors, config.structure)
        except KeyError as err:
            raise WeightsError(
                f"'{directory}' weights lack the structure tensor {err} that its architecture "
                "needs; the files do not belong together"
            ) from err
        try:
            model = cls(
                config,
                structure,
                tensors["template"],
                tensors["faces"],
                tensors["offset_mean"],
                tensors["offset_std"],
            )
        except ValueError as err:
            raise WeightsError(
                f"'{directory}' holds an inconsistent Mesh-VAE: {err}; its weight file does not "
                "fit together: re-download it or train it again"
            ) from err
        state = {name: tensors[name] for name in model.state_dict() if name in tensors}
        missing = sorted(set(model.state_dict()) - set(state))
        if missing:
            raise WeightsError(f"'{directory}' weights lack tensors: {', '.join(missing[:5])}")
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise WeightsError(
                f"'{directory}' weights do not fit its config: {one_line(err)}"
            ) from err
        model.extra_config = descriptive_entries(raw, model.own_config())
        return model


def architecture_from_config(entries: ConfigEntries) -> VAEConfig:
    """The ``architecture`` section of a saved Mesh-VAE's config.json as a VAEConfig, every
    entry checked (WeightsError naming the key, e.g. ``architecture.latent_channels``)."""
    defaults = VAEConfig("default", widths=())
    entries.only(VAEConfig.__dataclass_fields__)
    structure = entries.section("structure")
    structure.only(StructureConfig.__dataclass_fields__)
    plain = StructureConfig()
    return VAEConfig(
        name=entries.text("name"),
        widths=tuple(entries.wholes("widths", minimum=1)),
        latent_channels=entries.whole("latent_channels", 1, defaults.latent_channels),
        n_bases=entries.whole("n_bases", 1, defaults.n_bases),
        structure=StructureConfig(
            level_fractions=tuple(structure.fractions("level_fractions", plain.level_fractions)),
            down_radius=structure.positive("down_radius", plain.down_radius),
            same_radius=structure.positive("same_radius", plain.same_radius),
            up_radius=structure.positive("up_radius", plain.up_radius),
            max_neighbours=structure.whole("max_neighbours", 1, plain.max_neighbours),
            seed=structure.whole("seed", 0, plain.seed),
        ),
        seed=entries.whole("seed", 0, defaults.seed),
    )
