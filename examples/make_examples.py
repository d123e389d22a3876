"""Make the app's example images: public-domain photos and a face-model render, occluded.

    python examples/make_examples.py [--photos ../shared/test_images] [--out examples]

Every occluder is drawn by :func:`d3dface.bench.occluders.draw_occluder_of_type`, placed by the
face's MediaPipe landmarks, with a fixed seed, so the same inputs give the same files. Each
example is written as ``NAME.jpg`` (the occluded photo, cropped around the face, longer side at
most 640 px) and ``NAME_mask.png`` (its exact occlusion mask, white = hidden, same size): the
mask can be given to the app as a "mask file" to try a user-supplied mask.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: import the checkout's d3dface
    sys.path.insert(0, str(ROOT))

from d3dface.bench.occluders import draw_occluder_of_type  # noqa: E402
from d3dface.facemodel.model import FaceModel  # noqa: E402
from d3dface.fitting import facial_skin_faces  # noqa: E402
from d3dface.imageio import load_image  # noqa: E402
from d3dface.perception.landmarks import detect_face  # noqa: E402

MAX_SIDE = 640
"""Longer side of every example image, pixels."""
JPEG_QUALITY = 88


@dataclass(frozen=True)
class Example:
    """One example: the source (a photo file name, or ``"render"``), the occluder and its seed."""

    name: str
    source: str
    occluder: str
    seed: int


EXAMPLES = (
    Example("obama_face_mask", "obama.jpg", "face_mask", 3),
    Example("biden_sunglasses", "biden.jpg", "sunglasses", 7),
    Example("astronaut_hand", "astronaut.png", "hand", 11),
    Example("render_scarf", "render", "scarf", 5),
)
"""The examples the app shows, in order."""


def crop_around_face(image: np.ndarray, bbox: np.ndarray, margin: float = 0.8) -> np.ndarray:
    """Crop ``image`` (H, W, 3) to the face box ``(x0, y0, x1, y1)`` grown by ``margin`` times
    its size on every side (clipped to the image)."""
    x0, y0, x1, y1 = (float(value) for value in bbox)
    grow = margin * max(x1 - x0, y1 - y0)
    height, width = image.shape[:2]
    left, top = max(0, int(x0 - grow)), max(0, int(y0 - grow))
    right, bottom = min(width, int(x1 + grow)), min(height, int(y1 + grow))
    return image[top:bottom, left:right]


def shrink(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale an image (area resampling) and its mask (nearest) to a longer side <= MAX_SIDE."""
    height, width = mask.shape
    scale = min(1.0, MAX_SIDE / max(height, width))
    if scale == 1.0:
        return image, mask
    size = (round(width * scale), round(height * scale))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return small, cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0


def head_above_the_chin(
    model: FaceModel, vertices: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The head of ``vertices`` (V, 3) down to 1 cm below the chin, the lowest point of the
    face's skin (:func:`d3dface.fitting.facial_skin_faces`): the render's framing.

    Returns:
        ``keep`` (V,) bool, the vertices kept, and the triangles among them re-indexed into
        ``vertices[keep]``, (F', 3).
    """
    chin = vertices[facial_skin_faces(model).unique(), 1].min()
    keep = vertices[:, 1] >= chin - 0.01
    new_index = torch.cumsum(keep.long(), 0) - 1
    return keep, new_index[model.faces[keep[model.faces].all(dim=1)]]


def face_model_render(seed: int, size: int = 560) -> np.ndarray:
    """A shaded render of a random head of the shipped face model, skin coloured.

    Returns (size, size, 3) uint8.
    """
    from d3dface.render import render_preview

    model = FaceModel.from_pretrained(ROOT / "checkpoints" / "face_model")
    generator = torch.Generator().manual_seed(seed)
    identity = torch.randn(1, model.n_identity, generator=generator) * 0.8
    with torch.no_grad():
        vertices = model(identity=identity, expression=torch.zeros(1, model.n_expression))[0]
    keep, faces = head_above_the_chin(model, vertices)
    skin = torch.tensor([0.86, 0.66, 0.55]).expand(int(keep.sum()), 3)
    return render_preview(vertices[keep], faces, (size, size), skin, yaw_deg=12.0, pitch_deg=-4.0)


def make_example(example: Example, photos: Path, out: Path) -> dict[str, object]:
    """Draw one example's occluder and write ``NAME.jpg`` and ``NAME_mask.png``; its record."""
    if example.source == "render":
        image = face_model_render(example.seed)
    else:
        image = load_image(photos / example.source)
        if max(image.shape[:2]) > MAX_SIDE:  # large portraits: keep the head and shoulders
            image = crop_around_face(image, detect_face(image).bbox)
    landmarks = detect_face(image).points
    painted, mask = draw_occluder_of_type(
        image, landmarks, example.occluder, np.random.default_rng(example.seed)
    )
    painted, mask = shrink(painted, mask)
    photo_path, mask_path = out / f"{example.name}.jpg", out / f"{example.name}_mask.png"
    Image.fromarray(painted).save(photo_path, quality=JPEG_QUALITY, optimize=True)
    Image.fromarray(mask).convert("1").save(mask_path, optimize=True)
    return {
        "photo": photo_path.name,
        "mask": mask_path.name,
        "source": example.source,
        "occluder": example.occluder,
        "seed": example.seed,
        "size": [int(painted.shape[1]), int(painted.shape[0])],
        "occluded_fraction": round(float(mask.mean()), 4),
    }


def main(argv: list[str] | None = None) -> None:
    """Write every example and ``examples.json`` (what each file is)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "test_images")
    parser.add_argument("--out", type=Path, default=ROOT / "examples")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    records = [make_example(example, args.photos, args.out) for example in EXAMPLES]
    (args.out / "examples.json").write_text(json.dumps(records, indent=2) + "\n")
    for record in records:
        print(f"{record['photo']}: {record['occluder']}, {record['size']}")


if __name__ == "__main__":
    main()
