"""Differentiable triangle rasterisation, shading and vertex visibility in plain PyTorch.

This is the project's small stand-in for the parts of pytorch3d it needs. Everything runs
unchanged on CPU and CUDA (tensors are created on the inputs' device) and in float32 or float64.

Conventions
-----------
* Model space: metres, +y up, +z out of the face toward the viewer.
* Camera space (OpenGL-like): x right, y up, the camera sits at the origin and looks down -z,
  so a point in front of it has z < 0; ``depth = -z``.
* Pixels: u to the right, v down; pixel (row i, column j) has its centre at (j + 0.5, i + 0.5).
  Images are (B, H, W, C).
* Perspective: ``u = cx + fx * x / depth``, ``v = cy - fy * y / depth``.
  Orthographic: ``u = cx + fx * x``, ``v = cy - fy * y`` (fx, fy in pixels per metre).
* Winding: a triangle whose corners run counter-clockwise when seen from the camera is front
  facing. Because v points down, such a triangle has a *negative* signed area in (u, v).

Pipeline: :func:`project` -> :func:`rasterize` (z-buffer search without autograd, then
barycentrics recomputed with autograd for the winning triangles) -> :func:`interpolate` ->
shading (:func:`sh_shading` or :func:`lambert_shading`). :func:`render` chains them.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn.functional import normalize

# Upper bound on (triangle, pixel) candidate pairs tested at once by the z-buffer search. The
# fit's and the diversity stage's renders have at most about 0.2M (N = 16), one chunk; a large
# photo's overlay has millions, and memory grows with the chunk, not the time saved.
_CANDIDATE_BUDGET = 1_000_000
# Smallest depth (metres) used as a perspective divisor; points nearer than this are invalid.
_MIN_DEPTH = 1e-6
_DEFAULT_ALBEDO = 0.8
_PREVIEW_FOV_DEG = 12.0
_PREVIEW_FILL = 0.9
_PREVIEW_LIGHT = (0.3, 0.4, 1.0)

# Real spherical-harmonics normalisation constants (orthonormal on the unit sphere).
_SH_Y00 = 0.5 * math.sqrt(1.0 / math.pi)  # 0.282095
_SH_Y1 = math.sqrt(3.0 / (4.0 * math.pi))  # 0.488603
_SH_Y2_XY = 0.5 * math.sqrt(15.0 / math.pi)  # 1.092548 (xy, yz, xz)
_SH_Y20 = 0.25 * math.sqrt(5.0 / math.pi)  # 0.315392
_SH_Y22 = 0.25 * math.sqrt(15.0 / math.pi)  # 0.546274


@dataclass
class Camera:
    """Pinhole or orthographic camera at the camera-space origin, looking down -z.

    ``fx, fy, cx, cy`` are Python floats or tensors of shape (B,) (one value per batch element).
    For a perspective camera fx, fy are focal lengths in pixels; for an orthographic one they are
    pixels per metre. ``image_size`` is (H, W). ``distance`` optionally records how far in front
    of the camera (metres) the subject is meant to be placed, i.e. translate model-space points
    by (0, 0, -distance); the projection itself does not use it.
    """

    fx: float | Tensor
    fy: float | Tensor
    cx: float | Tensor
    cy: float | Tensor
    image_size: tuple[int, int]
    orthographic: bool = False
    distance: float | None = None

    @staticmethod
    def looking_at_face(
        image_size: tuple[int, int] = (512, 512),
        fov_deg: float = 12.0,
        distance: float = 1.3,
    ) -> Camera:
        """A perspective camera suited to a face placed ``distance`` metres in front of it.

        The principal point is the image centre (W / 2, H / 2); fx = fy are chosen so that the
        field of view across the image's shorter side is ``fov_deg``. With the defaults
        (12 degrees, 1.3 m) the view spans about 0.27 m at the subject, a whole face with
        margin. ``distance`` is stored on the camera: place the face at z = -distance.
        """
        height, width = image_size
        focal = 0.5 * min(height, width) / math.tan(math.radians(fov_deg) / 2.0)
        return Camera(
            fx=focal,
            fy=focal,
            cx=width / 2.0,
            cy=height / 2.0,
            image_size=(height, width),
            distance=distance,
        )


@dataclass
class Fragments:
    """Per-pixel rasterisation result for a batch of B images of size H x W.

    ``face_index`` (B, H, W) long: the visible triangle, -1 where no triangle covers the pixel
    centre. ``bary`` (B, H, W, 3): barycentric weights of that triangle's corners at the pixel
    centre (perspective-correct unless disabled), 0 on the background; differentiable w.r.t. the
    screen coordinates. ``depth`` (B, H, W): depth of the visible surface, +inf on the background.
    """

    face_index: Tensor
    bary: Tensor
    depth: Tensor

    @property
    def mask(self) -> Tensor:
        """(B, H, W) bool: True where a triangle covers the pixel centre."""
        return self.face_index >= 0


def _per_batch(value: float | Tensor, like: Tensor) -> Tensor:
    """A camera parameter as a tensor broadcastable against (B, V): a scalar or shape (B, 1)."""
    param = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return param.reshape(-1, 1) if param.ndim > 0 else param


def rotation_matrix(angles: Tensor) -> Tensor:
    """Rotation matrices from Euler angles.

    ``angles`` (B, 3) radians: pitch (about x), yaw (about y), roll (about z).
    Returns (B, 3, 3) ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` (right-handed, so positive yaw
    turns +z toward +x).
    """
    pitch, yaw, roll = angles.unbind(-1)
    one, zero = torch.ones_like(pitch), torch.zeros_like(pitch)
    cp, sp = torch.cos(pitch), torch.sin(pitch)
    cy, sy = torch.cos(yaw), torch.sin(yaw)
    cr, sr = torch.cos(roll), torch.sin(roll)
    shape = (*angles.shape[:-1], 3, 3)
    rx = torch.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(shape)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(shape)
    rz = torch.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(shape)
    return rz @ ry @ rx


def transform_points(vertices: Tensor, R: Tensor, t: Tensor) -> Tensor:
    """Rigid transform: (B, V, 3) points, (B, 3, 3) rotation, (B, 3) translation -> (B, V, 3).

    Computes ``vertices @ R^T + t`` (each point is rotated, then translated).
    """
    return vertices @ R.transpose(-1, -2) + t[:, None, :]


def project(points_cam: Tensor, camera: Camera) -> Tensor:
    """Camera-space points (B, V, 3) -> screen coordinates (B, V, 3): u, v (pixels), depth.

    ``depth = -z`` is returned unchanged. For a perspective camera, points with
    depth < 1e-6 m get finite but meaningless u, v; :func:`rasterize` skips their triangles.
    """
    x, y, z = points_cam.unbind(-1)
    depth = -z
    fx, fy = _per_batch(camera.fx, points_cam), _per_batch(camera.fy, points_cam)
    cx, cy = _per_batch(camera.cx, points_cam), _per_batch(camera.cy, points_cam)
    if camera.orthographic:
        u, v = cx + fx * x, cy - fy * y
    else:
        divisor = depth.clamp(min=_MIN_DEPTH)
        u, v = cx + fx * x / divisor, cy - fy * y / divisor
    return torch.stack([u, v, depth], dim=-1)


def _gather_rows(values: Tensor, index: Tensor) -> Tensor:
    """``values[b, index[b, ...]]`` for values (B, V, C) and a long index (B, ...) into V:
    (B, ..., C). One ``index_select`` over the batch folded into the rows, whose gradient (an
    ``index_add`` along dim 0) is much faster on CPU than that of advanced indexing."""
    batch, num_rows, channels = values.shape
    offsets = torch.arange(batch, device=index.device).view(-1, *[1] * (index.ndim - 1))
    flat = (index + offsets * num_rows).reshape(-1)
    return values.reshape(-1, channels).index_select(0, flat).view(*index.shape, channels)


def _face_cross(vertices: Tensor, faces: Tensor) -> Tensor:
    """(B, V, 3), (F, 3) -> (B, F, 3) unnormalised face normals, length = twice the area."""
    batch = vertices.shape[0]
    v0, v1, v2 = (_gather_rows(vertices, faces[:, k].expand(batch, -1)) for k in range(3))
    return torch.cross(v1 - v0, v2 - v0, dim=-1)


def face_normals(vertices: Tensor, faces: Tensor) -> Tensor:
    """Unit face normals (B, F, 3) of a mesh (B, V, 3), (F, 3).

    Corners ordered counter-clockwise when seen from +z give a normal pointing to +z.
    """
    return normalize(_face_cross(vertices, faces), dim=-1, eps=1e-12)


def vertex_normals(vertices: Tensor, faces: Tensor) -> Tensor:
    """Unit vertex normals (B, V, 3): the area-weighted sum of adjacent face normals.

    ``faces`` (F, 3) long; counter-clockwise faces (seen from +z) are front faces pointing to +z.
    Vertices used by no face get a zero vector.
    """
    summed = _sum_at_corners(_face_cross(vertices, faces), faces, vertices.shape[1])
    return normalize(summed, dim=-1, eps=1e-12)


def _sum_at_corners(values: Tensor, faces: Tensor, num_vertices: int) -> Tensor:
    """Per-face values (B, F, C) summed onto the faces' corners: (B, V, C).

    For each corner k in turn, each face adds its value to its corner-k vertex, in face order.
    The batch is folded into the rows so that ``index_add`` runs along dim 0 (many times
    faster on CPU than along dim 1, same sums in the same order).
    """
    batch, _, channels = values.shape
    offsets = torch.arange(batch, device=values.device)[:, None] * num_vertices
    flat = values.reshape(-1, channels)
    summed = values.new_zeros(batch * num_vertices, channels)
    for k in range(3):
        summed = summed.index_add(0, (faces[:, k] + offsets).reshape(-1), flat)
    return summed.reshape(batch, num_vertices, channels)


def _edge_weights(du: Tensor, dv: Tensor) -> Tensor:
    """Unnormalised screen-space barycentrics of pixel centres.

    ``du, dv`` (3, N): corner coordinates minus the pixel centre, corner-major. Returns (3, N)
    where row k is the 2D cross product of the two corners other than k, taken in cyclic order.
    Their sum is twice the triangle's signed area, and the weight of a shared edge is exactly
    negated in the neighbouring triangle, so adjacent triangles leave no cracks.
    """
    return torch.stack(
        [du[(k + 1) % 3] * dv[(k + 2) % 3] - dv[(k + 1) % 3] * du[(k + 2) % 3] for k in range(3)]
    )


def _weights_to_bary_depth(
    weights: Tensor, depth: Tensor, perspective_correct: bool
) -> tuple[Tensor, Tensor]:
    """Unnormalised weights (3, N) and corner depths (3, N) -> bary (3, N), depth (N,).

    Perspective-correct: weights are divided by corner depth before normalising, and 1 / depth
    is interpolated linearly in screen space. Otherwise both are linear in screen space (exact
    for orthographic projection).
    """
    if perspective_correct:
        scaled = weights / depth
        bary = scaled / scaled.sum(0)
        return bary, weights.sum(0) / scaled.sum(0)
    bary = weights / weights.sum(0)
    return bary, (bary * depth).sum(0)


def _triangle_pixel_ranges(
    tris: Tensor, image_size: tuple[int, int], cull_backfaces: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Clipped pixel bounding boxes of screen triangles.

    ``tris`` (T, 3, 3) corners (u, v, depth). Returns first column, first row, number of
    columns, number of rows, each (T,) long; triangles to skip (a corner at depth <= 0 or not
    finite, zero area, or back facing when culling) get zero columns.
    """
    height, width = image_size
    u, v, d = tris.unbind(-1)
    area2 = (u[:, 1] - u[:, 0]) * (v[:, 2] - v[:, 0]) - (u[:, 2] - u[:, 0]) * (v[:, 1] - v[:, 0])
    usable = (d > 0).all(-1) & torch.isfinite(tris).all(-1).all(-1) & (area2 != 0)
    if cull_backfaces:
        usable &= area2 < 0
    u = torch.where(usable[:, None], u, torch.zeros_like(u))
    v = torch.where(usable[:, None], v, torch.zeros_like(v))
    col0 = torch.ceil(u.amin(-1) - 0.5).clamp(0, width)
    col1 = torch.floor(u.amax(-1) - 0.5).clamp(-1, width - 1)
    row0 = torch.ceil(v.amin(-1) - 0.5).clamp(0, height)
    row1 = torch.floor(v.amax(-1) - 0.5).clamp(-1, height - 1)
    ncols = torch.where(usable, (col1 - col0 + 1).clamp(min=0), torch.zeros_like(col0))
    nrows = (row1 - row0 + 1).clamp(min=0)
    return col0.long(), row0.long(), ncols.long(), nrows.long()


def _candidate_depths(
    corners: Tensor,
    col: Tensor,
    row: Tensor,
    cull_backfaces: bool,
    perspective_correct: bool,
) -> tuple[Tensor, Tensor]:
    """Coverage and depth of (triangle, pixel) candidates.

    ``corners`` (3, 3, N): (u, v, depth) x corner x candidate; ``col, row`` (N,) the pixel.
    Returns inside (N,) bool (pixel centre in the closed triangle) and depth (N,) there.
    """
    du = corners[0] - (col.to(corners.dtype) + 0.5)
    dv = corners[1] - (row.to(corners.dtype) + 0.5)
    weights = _edge_weights(du, dv)
    orientation = torch.sign(weights.sum(0))
    inside = ((weights * orientation).amin(0) >= 0) & (orientation != 0)
    if cull_backfaces:
        inside &= orientation < 0
    _, depth = _weights_to_bary_depth(weights, corners[2], perspective_correct)
    return inside, depth


def _zbuffer_search(
    screen: Tensor,
    faces: Tensor,
    image_size: tuple[int, int],
    cull_backfaces: bool,
    perspective_correct: bool,
) -> Tensor:
    """Visible triangle per pixel, without autograd.

    ``screen`` (B, V, 3), ``faces`` (F, 3). Returns (B, H, W) long face indices, -1 where empty.
    The nearest candidate wins; equal depths go to the smallest face index. Each triangle's
    clipped bounding box is expanded into (triangle, pixel) candidates, at most about
    ``_CANDIDATE_BUDGET`` at a time, and each chunk's z-buffer is merged into the running one.
    """
    batch, num_faces = screen.shape[0], faces.shape[0]
    height, width = image_size
    num_pixels = batch * height * width
    device = screen.device
    tris = screen[:, faces].reshape(batch * num_faces, 3, 3)
    col0, row0, ncols, nrows = _triangle_pixel_ranges(tris, image_size, cull_backfaces)
    counts = ncols * nrows
    kept = torch.nonzero(counts > 0).squeeze(1)
    counts, col0, row0, ncols = counts[kept], col0[kept], row0[kept], ncols[kept]
    corners = tris[kept].permute(2, 1, 0).reshape(9, -1)  # (u, v, depth) x corner, triangle
    starts = torch.cumsum(counts, 0) - counts
    total = int(counts.sum())
    chunk_starts = torch.arange(0, max(total, 1), _CANDIDATE_BUDGET, device=device)
    chunk_edges = [*torch.searchsorted(starts, chunk_starts).tolist(), kept.numel()]

    no_face = batch * num_faces
    zbuf = screen.new_full((num_pixels,), math.inf)
    fbuf = torch.full((num_pixels,), no_face, dtype=torch.long, device=device)
    for first, last in itertools.pairwise(chunk_edges):
        chunk_counts = counts[first:last]
        size = int(chunk_counts.sum())
        if size == 0:
            continue
        # the kept triangle of each candidate: first + the number of triangle starts before it
        step = torch.zeros(size, dtype=torch.long, device=device)
        step[starts[first + 1 : last] - starts[first]] = 1
        owner = torch.cumsum(step, 0) + first
        offset = torch.arange(size, device=device) + starts[first] - starts.index_select(0, owner)
        span = ncols.index_select(0, owner)
        row_step = torch.div(offset, span, rounding_mode="floor")
        col = col0.index_select(0, owner) + offset - row_step * span
        row = row0.index_select(0, owner) + row_step
        candidate_corners = corners.index_select(1, owner).view(3, 3, size)
        inside, depth = _candidate_depths(
            candidate_corners, col, row, cull_backfaces, perspective_correct
        )
        hit = torch.nonzero(inside).squeeze(1)
        face = kept.index_select(0, owner.index_select(0, hit))
        depth = depth.index_select(0, hit)
        row, col = row.index_select(0, hit), col.index_select(0, hit)
        pixel = ((face // num_faces) * height + row) * width + col
        chunk_z = zbuf.new_full((num_pixels,), math.inf).scatter_reduce(0, pixel, depth, "amin")
        nearest = depth == chunk_z[pixel]
        chunk_f = torch.full_like(fbuf, no_face).scatter_reduce(
            0, pixel[nearest], face[nearest], "amin"
        )
        closer = chunk_z < zbuf
        zbuf = torch.where(closer, chunk_z, zbuf)
        fbuf = torch.where(closer, chunk_f, fbuf)
    face_index = torch.where(fbuf == no_face, -1, fbuf % num_faces)
    return face_index.reshape(batch, height, width)


def _pixel_barycentrics(
    screen: Tensor, faces: Tensor, face_index: Tensor, perspective_correct: bool
) -> tuple[Tensor, Tensor]:
    """Barycentrics (B, H, W, 3) and depth (B, H, W) of the chosen triangles, with autograd.

    ``screen`` (B, V, 3), ``faces`` (F, 3), ``face_index`` (B, H, W) from the z-buffer search.
    """
    batch, height, width = face_index.shape
    flat = face_index.reshape(-1)
    pixel = torch.nonzero(flat >= 0).squeeze(1)
    image_of, within = pixel // (height * width), pixel % (height * width)
    corners = screen[image_of[:, None], faces[flat[pixel]]].permute(2, 1, 0)
    du = corners[0] - ((within % width).to(screen.dtype) + 0.5)
    dv = corners[1] - ((within // width).to(screen.dtype) + 0.5)
    bary, depth = _weights_to_bary_depth(_edge_weights(du, dv), corners[2], perspective_correct)
    num_pixels = batch * height * width
    bary_image = screen.new_zeros((num_pixels, 3)).index_put((pixel,), bary.T)
    depth_image = screen.new_full((num_pixels,), math.inf).index_put((pixel,), depth)
    return bary_image.reshape(batch, height, width, 3), depth_image.reshape(batch, height, width)


def rasterize(
    screen: Tensor,
    faces: Tensor,
    image_size: tuple[int, int],
    cull_backfaces: bool = False,
    perspective_correct: bool = True,
) -> Fragments:
    """Z-buffer rasterisation of screen-space triangles at pixel centres.

    ``screen`` (B, V, 3) from :func:`project` (u, v, depth); ``faces`` (F, 3) long;
    ``image_size`` (H, W). A pixel is covered by a triangle when its centre lies in the closed
    triangle (centres on an edge count); the nearest covering surface wins, ties go to the
    smallest face index. Triangles with a corner at depth <= 0 are skipped. Both windings are
    drawn unless ``cull_backfaces``, which keeps only front faces (counter-clockwise as seen from
    the camera, i.e. negative signed area in (u, v)).

    ``perspective_correct=True`` assumes a perspective projection: barycentrics are corrected
    and 1 / depth is interpolated in screen space. Pass False for an orthographic camera, where
    screen-space interpolation is exact.

    The visibility search runs without autograd in chunks of at most ``_CANDIDATE_BUDGET``
    (triangle, pixel) pairs; ``bary`` and ``depth`` are then recomputed from ``screen`` with
    autograd, so they are differentiable w.r.t. the vertex positions.
    """
    faces = faces.long()
    with torch.no_grad():
        face_index = _zbuffer_search(
            screen.detach(), faces, image_size, cull_backfaces, perspective_correct
        )
    bary, depth = _pixel_barycentrics(screen, faces, face_index, perspective_correct)
    return Fragments(face_index=face_index, bary=bary, depth=depth)


def interpolate(attributes: Tensor, faces: Tensor, fragments: Fragments) -> Tensor:
    """Interpolate per-vertex attributes (B, V, C) to pixels (B, H, W, C); zeros on background.

    Differentiable w.r.t. ``attributes`` and, through ``fragments.bary``, the vertex positions.
    """
    _, num_vertices, channels = attributes.shape
    face_index = fragments.face_index.reshape(-1)
    pixel = torch.nonzero(face_index >= 0).squeeze(1)
    corners = faces.long().index_select(0, face_index[pixel])
    corners = corners + (pixel // fragments.face_index[0].numel() * num_vertices)[:, None]
    bary = fragments.bary.reshape(-1, 3)[pixel]
    table = attributes.reshape(-1, channels)
    values = sum(bary[:, k : k + 1] * table.index_select(0, corners[:, k]) for k in range(3))
    image = attributes.new_zeros((face_index.numel(), channels)).index_put((pixel,), values)
    return image.reshape(*fragments.face_index.shape, channels)


def sh_basis(normals: Tensor) -> Tensor:
    """Real spherical harmonics up to order 2 at unit normals: (..., 3) -> (..., 9).

    Orthonormal real SH (integral of Y_i * Y_j over the unit sphere = delta_ij), ordered by
    (l, m) = (0,0), (1,-1), (1,0), (1,1), (2,-2), (2,-1), (2,0), (2,1), (2,2):
    ``[0.282095, 0.488603 y, 0.488603 z, 0.488603 x, 1.092548 xy, 1.092548 yz,
    0.315392 (3z^2 - 1), 1.092548 xz, 0.546274 (x^2 - y^2)]``, where the constants are
    sqrt(1/4pi), sqrt(3/4pi), sqrt(15/4pi), sqrt(5/16pi), sqrt(15/16pi).
    """
    x, y, z = normals.unbind(-1)
    return torch.stack(
        [
            torch.full_like(x, _SH_Y00),
            _SH_Y1 * y,
            _SH_Y1 * z,
            _SH_Y1 * x,
            _SH_Y2_XY * x * y,
            _SH_Y2_XY * y * z,
            _SH_Y20 * (3.0 * z * z - 1.0),
            _SH_Y2_XY * x * z,
            _SH_Y22 * (x * x - y * y),
        ],
        dim=-1,
    )


def sh_shading(normals: Tensor, sh_coeffs: Tensor) -> Tensor:
    """Irradiance from SH lighting: normals (B, ..., 3), coefficients (B, 9, C) -> (B, ..., C).

    Shading is ``sh_basis(normals) @ sh_coeffs`` per batch element: the coefficients are taken
    as irradiance coefficients in the :func:`sh_basis` basis (any Lambertian convolution factors
    are part of them). Constant light of intensity c is ``sh_coeffs[:, 0] = c / 0.282095``.
    """
    return torch.einsum("b...k,bkc->b...c", sh_basis(normals), sh_coeffs)


def lambert_shading(
    normals: Tensor, light_dir: Tensor, ambient: float = 0.3, diffuse: float = 0.7
) -> Tensor:
    """Ambient + Lambert shading: normals (B, ..., 3), light_dir (B, 3) -> (B, ..., 1).

    ``light_dir`` points toward the light (normalised here); ``normals`` should be unit length.
    Returns ``ambient + diffuse * max(0, n . l)``.
    """
    light = normalize(light_dir, dim=-1)
    light = light.reshape(light.shape[0], *([1] * (normals.ndim - 2)), 3)
    cosine = (normals * light).sum(-1, keepdim=True).clamp(min=0.0)
    return ambient + diffuse * cosine


def render(
    vertices_cam: Tensor,
    faces: Tensor,
    camera: Camera,
    albedo: Tensor | None = None,
    sh_coeffs: Tensor | None = None,
    light_dir: Tensor | None = None,
    background: float | tuple[float, float, float] = 0.0,
) -> tuple[Tensor, Fragments]:
    """Differentiable shaded render of meshes given in camera space.

    ``vertices_cam`` (B, V, 3), ``faces`` (F, 3), ``albedo`` (B, V, 3) per-vertex colour
    (default light grey 0.8). Pixel normals are interpolated camera-space vertex normals,
    renormalised. Shading is :func:`sh_shading` with ``sh_coeffs`` (B, 9, C), C in {1, 3}, when
    given, else :func:`lambert_shading` with ``light_dir`` (B, 3), default (0, 0, 1) (a light at
    the camera). ``background`` is a grey level or an RGB triple.
    Returns the image (B, H, W, 3) and the :class:`Fragments`.
    """
    screen = project(vertices_cam, camera)
    fragments = rasterize(
        screen, faces, camera.image_size, perspective_correct=not camera.orthographic
    )
    if albedo is None:
        albedo = torch.full_like(vertices_cam, _DEFAULT_ALBEDO)
    attributes = torch.cat([vertex_normals(vertices_cam, faces), albedo], dim=-1)
    normals, colour = interpolate(attributes, faces, fragments).split(3, dim=-1)
    normals = normalize(normals, dim=-1, eps=1e-12)
    if sh_coeffs is not None:
        shading = sh_shading(normals, sh_coeffs)
    else:
        if light_dir is None:
            light_dir = vertices_cam.new_tensor([0.0, 0.0, 1.0]).expand(vertices_cam.shape[0], 3)
        shading = lambert_shading(normals, light_dir)
    image = colour * shading
    fill = torch.as_tensor(background, dtype=image.dtype, device=image.device).expand(3)
    return torch.where(fragments.mask.unsqueeze(-1), image, fill), fragments


def _facing_camera(
    screen: Tensor, faces: Tensor, vertices_cam: Tensor | None, orthographic: bool
) -> Tensor:
    """(B, V) bool: the vertex normal points toward the camera (see :func:`vertex_visibility`)."""
    if vertices_cam is not None:
        normals = vertex_normals(vertices_cam, faces)
        if orthographic:
            return normals[..., 2] > 0
        return (normals * -vertices_cam).sum(-1) > 0
    u, v = screen[..., 0:1], screen[..., 1:2]
    planar = torch.cat([u, v, torch.zeros_like(u)], dim=-1)
    signed_area = _face_cross(planar, faces)[..., 2:3]
    return _sum_at_corners(signed_area, faces, screen.shape[1])[..., 0] < 0


def _unoccluded(screen: Tensor, depth_image: Tensor, tolerance: float) -> Tensor:
    """(B, V) bool: the vertex is not behind the z-buffer (see :func:`vertex_visibility`)."""
    batch, height, width = depth_image.shape
    finite = torch.isfinite(depth_image)
    far = torch.where(finite, depth_image, -math.inf).amax(dim=(1, 2))
    near = torch.where(finite, depth_image, math.inf).amin(dim=(1, 2))
    scale = torch.maximum(far - near, 1e-3 * far)
    slack = torch.where(finite.any(-1).any(-1), tolerance * scale, torch.zeros_like(scale))
    u = screen[..., 0].nan_to_num(0.0).clamp(-1.0, width + 1.0)
    v = screen[..., 1].nan_to_num(0.0).clamp(-1.0, height + 1.0)
    col0, row0 = torch.floor(u - 0.5).long(), torch.floor(v - 0.5).long()
    flat = depth_image.reshape(batch, height * width)
    footprint = []
    for dr in (0, 1):
        for dc in (0, 1):
            row = (row0 + dr).clamp(0, height - 1)
            col = (col0 + dc).clamp(0, width - 1)
            footprint.append(flat.gather(1, row * width + col))
    surface = torch.stack(footprint, -1).amax(-1)
    return screen[..., 2] <= surface + slack[:, None]


@torch.no_grad()
def vertex_visibility(
    screen: Tensor,
    faces: Tensor,
    fragments: Fragments,
    vertices_cam: Tensor | None = None,
    tolerance: float = 0.01,
    orthographic: bool = False,
) -> Tensor:
    """Which vertices the camera sees: (B, V) bool.

    ``screen`` (B, V, 3) from :func:`project`, ``faces`` (F, 3), ``fragments`` from
    :func:`rasterize` of the same scene. A vertex is visible when all of these hold:

    1. Inside the image: 0 <= u < W, 0 <= v < H and depth > 0.
    2. Front facing. With ``vertices_cam`` (B, V, 3): its camera-space vertex normal n has
       n . (-p) > 0 (toward the camera centre), or n_z > 0 when ``orthographic``. Without it:
       the sum of the signed screen areas of its adjacent triangles is front facing (negative),
       which holds for either projection.
    3. Not occluded: depth <= D + tolerance * S, where D is the largest z-buffer depth among the
       2 x 2 pixel centres around the vertex's (u, v) (background = +inf) and S the scene's depth
       range in that image (max - min of the covered z-buffer, at least 1e-3 of its max). The
       2 x 2 maximum keeps vertices on steep visible surfaces, whose nearest pixel centre can be
       much nearer than the vertex; the cost is that visibility reaches about one pixel under
       an occluder's edge.
    """
    faces = faces.long()
    height, width = fragments.face_index.shape[1:]
    screen = screen.detach()
    u, v, depth = screen.unbind(-1)
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height) & (depth > 0)
    facing = _facing_camera(
        screen, faces, None if vertices_cam is None else vertices_cam.detach(), orthographic
    )
    return inside & facing & _unoccluded(screen, fragments.depth.detach(), tolerance)


@torch.no_grad()
def render_preview(
    vertices: Tensor | np.ndarray,
    faces: Tensor | np.ndarray,
    image_size: tuple[int, int] = (512, 512),
    colors: Tensor | np.ndarray | None = None,
    yaw_deg: float = 0.0,
    pitch_deg: float = 0.0,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> np.ndarray:
    """Plain shaded preview of one mesh given in model space (any unit; +y up, +z to viewer).

    ``vertices`` (V, 3), ``faces`` (F, 3), ``colors`` (V, 3) in [0, 1] (default light grey).
    The mesh is centred on its bounding box and rotated about that centre by ``pitch_deg``
    (about x) and ``yaw_deg`` (about y, positive turns the front toward the image's right); a
    12-degree perspective camera is placed so that the bounding sphere fills 90% of the shorter
    image side. Lambert shading with a light up, right and in front. Returns (H, W, 3) uint8.
    """
    verts = torch.as_tensor(vertices, dtype=torch.float32)
    faces = torch.as_tensor(faces, dtype=torch.long, device=verts.device)
    low, high = verts.amin(0), verts.amax(0)
    radius = float((high - low).norm()) / 2.0 or 1.0
    half_fov = math.radians(_PREVIEW_FOV_DEG) / 2.0
    camera = Camera.looking_at_face(
        image_size, _PREVIEW_FOV_DEG, distance=radius / math.sin(_PREVIEW_FILL * half_fov)
    )
    angles = verts.new_tensor([[math.radians(pitch_deg), math.radians(yaw_deg), 0.0]])
    shift = verts.new_tensor([[0.0, 0.0, -camera.distance]])
    verts_cam = transform_points((verts - (low + high) / 2.0)[None], rotation_matrix(angles), shift)
    albedo = None
    if colors is not None:
        albedo = torch.as_tensor(colors, dtype=verts.dtype, device=verts.device)[None]
    image, _ = render(
        verts_cam,
        faces,
        camera,
        albedo=albedo,
        light_dir=verts.new_tensor([_PREVIEW_LIGHT]),
        background=background,
    )
    return (image[0].clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).cpu().numpy()
