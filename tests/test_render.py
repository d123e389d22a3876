"""Tests for d3dface.render: coverage, z-buffer, barycentrics, gradients, shading, visibility."""

import math

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial.transform import Rotation
from scipy.special import sph_harm_y

from d3dface import render as rd
from d3dface.render import (
    Camera,
    face_normals,
    interpolate,
    lambert_shading,
    project,
    rasterize,
    render,
    render_preview,
    rotation_matrix,
    sh_basis,
    sh_shading,
    transform_points,
    vertex_normals,
    vertex_visibility,
)

# Orthographic test camera: 10 pixels per metre, H = 12, W = 20 (not square, to catch swaps).
ORTHO = Camera(fx=10.0, fy=10.0, cx=10.0, cy=6.0, image_size=(12, 20), orthographic=True)


def square(
    x0: float, x1: float, y0: float, y1: float, z: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Axis-aligned square at height z: vertices (4, 3), faces (2, 3), counter-clockwise from +z."""
    vertices = torch.tensor([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]])
    return vertices, torch.tensor([[0, 1, 2], [0, 2, 3]])


def pixel_centres(image_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """u, v (H, W) of every pixel centre."""
    rows, cols = np.mgrid[0 : image_size[0], 0 : image_size[1]]
    return cols + 0.5, rows + 0.5


def ortho_unproject(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Camera-space x, y (H, W) seen by each pixel centre of an orthographic camera."""
    u, v = pixel_centres(camera.image_size)
    return (u - camera.cx) / camera.fx, (camera.cy - v) / camera.fy


def test_square_coverage_matches_analytic_pixel_set():
    x0, x1, y0, y1 = -0.53, 0.71, -0.22, 0.34
    vertices, faces = square(x0, x1, y0, y1, -2.0)
    fragments = rasterize(
        project(vertices[None], ORTHO), faces, ORTHO.image_size, perspective_correct=False
    )
    x, y = ortho_unproject(ORTHO)
    expected = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    assert expected.sum() == 12 * 5  # columns 5..16, rows 3..7
    np.testing.assert_array_equal(fragments.mask[0].numpy(), expected)

    # Face 0 = corners (0, 1, 2) lies below the diagonal from (x0, y0) to (x1, y1).
    side = (x1 - x0) * (y - y0) - (y1 - y0) * (x - x0)
    face = fragments.face_index[0].numpy()
    assert np.all(face[expected & (side < -1e-6)] == 0)
    assert np.all(face[expected & (side > 1e-6)] == 1)
    assert np.all(face[~expected] == -1)
    depth = fragments.depth[0].numpy()
    np.testing.assert_allclose(depth[expected], 2.0, rtol=1e-6)
    assert np.all(np.isinf(depth[~expected]))
    bary = fragments.bary[0].numpy()
    np.testing.assert_allclose(bary[expected].sum(-1), 1.0, rtol=1e-6)
    assert np.all(bary[~expected] == 0)


@pytest.mark.parametrize("near_first", [True, False])
def test_nearer_square_wins_in_overlap(near_first: bool):
    far_v, far_f = square(-0.53, 0.41, -0.22, 0.34, -3.0)
    near_v, near_f = square(0.07, 0.71, -0.43, 0.12, -1.0)
    parts = [(near_v, near_f), (far_v, far_f)] if near_first else [(far_v, far_f), (near_v, near_f)]
    vertices = torch.cat([parts[0][0], parts[1][0]])
    faces = torch.cat([parts[0][1], parts[1][1] + 4])
    near_faces = {0, 1} if near_first else {2, 3}
    fragments = rasterize(
        project(vertices[None], ORTHO), faces, ORTHO.image_size, perspective_correct=False
    )
    x, y = ortho_unproject(ORTHO)
    in_far = (x >= -0.53) & (x <= 0.41) & (y >= -0.22) & (y <= 0.34)
    in_near = (x >= 0.07) & (x <= 0.71) & (y >= -0.43) & (y <= 0.12)
    assert (in_far & in_near).sum() > 4
    face = fragments.face_index[0].numpy()
    depth = fragments.depth[0].numpy()
    np.testing.assert_array_equal(fragments.mask[0].numpy(), in_far | in_near)
    assert all(f in near_faces for f in face[in_near])
    assert not any(f in near_faces for f in face[in_far & ~in_near])
    np.testing.assert_allclose(depth[in_near], 1.0, rtol=1e-6)
    np.testing.assert_allclose(depth[in_far & ~in_near], 3.0, rtol=1e-6)


def test_tilted_plane_depth_orthographic():
    x0, x1, y0, y1 = -0.81, 0.77, -0.47, 0.52
    vertices, faces = square(x0, x1, y0, y1, 0.0)
    vertices[:, 2] = -2.0 + 0.3 * vertices[:, 0] - 0.2 * vertices[:, 1]
    fragments = rasterize(
        project(vertices[None], ORTHO), faces, ORTHO.image_size, perspective_correct=False
    )
    x, y = ortho_unproject(ORTHO)
    covered = fragments.mask[0].numpy()
    assert covered.sum() > 100
    expected = 2.0 - 0.3 * x - 0.2 * -y
    np.testing.assert_allclose(fragments.depth[0].numpy()[covered], expected[covered], atol=1e-5)


def perspective_scene() -> tuple[Camera, torch.Tensor, torch.Tensor]:
    """A triangle strongly slanted in depth, seen by a perspective camera (H = 24, W = 32)."""
    camera = Camera(fx=40.0, fy=40.0, cx=16.0, cy=12.0, image_size=(24, 32))
    vertices = torch.tensor([[-0.3, -0.25, -1.0], [0.35, -0.2, -2.5], [0.0, 0.3, -1.6]])
    return camera, vertices, torch.tensor([[0, 1, 2]])


def test_perspective_correct_interpolation_matches_ray_plane_intersection():
    camera, vertices, faces = perspective_scene()
    screen = project(vertices[None], camera)
    fragments = rasterize(screen, faces, camera.image_size)
    points = interpolate(vertices[None], faces, fragments)[0].numpy()
    covered = fragments.mask[0].numpy()
    assert covered.sum() > 40

    v0, v1, v2 = vertices.double().numpy()
    normal = np.cross(v1 - v0, v2 - v0)
    u, v = pixel_centres(camera.image_size)
    rays = np.stack(
        [(u - camera.cx) / camera.fx, -(v - camera.cy) / camera.fy, -np.ones_like(u)], -1
    )
    hits = rays * ((v0 @ normal) / (rays @ normal))[..., None]
    np.testing.assert_allclose(points[covered], hits[covered], atol=2e-5)
    np.testing.assert_allclose(fragments.depth[0].numpy()[covered], -hits[covered][:, 2], rtol=1e-5)

    # Screen-space (affine) interpolation is measurably wrong for this slanted triangle.
    affine = rasterize(screen, faces, camera.image_size, perspective_correct=False)
    affine_points = interpolate(vertices[None], faces, affine)[0].numpy()
    assert np.abs(affine_points[covered] - hits[covered]).max() > 1e-2


def reference_zbuffer(
    screen: np.ndarray, faces: np.ndarray, image_size: tuple[int, int], perspective: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force z-buffer: per pixel and triangle, solve for barycentrics with numpy.

    Returns face index (H, W) and an 'ambiguous' mask (H, W) of pixels whose outcome depends
    on rounding (centre within 1e-4 of an edge, or two depths within 1e-4).
    """
    height, width = image_size
    best = -np.ones(image_size, dtype=np.int64)
    ambiguous = np.zeros(image_size, dtype=bool)
    for i in range(height):
        for j in range(width):
            hits = []
            for f, corners in enumerate(faces):
                tri = screen[corners]
                system = np.vstack([tri[:, 0], tri[:, 1], np.ones(3)])
                bary = np.linalg.solve(system, [j + 0.5, i + 0.5, 1.0])
                if np.abs(bary).min() < 1e-4:
                    ambiguous[i, j] = True
                if bary.min() >= 0:
                    depth = 1.0 / (bary / tri[:, 2]).sum() if perspective else bary @ tri[:, 2]
                    hits.append((depth, f))
            hits.sort()
            if hits:
                best[i, j] = hits[0][1]
            if len(hits) > 1 and hits[1][0] - hits[0][0] < 1e-4:
                ambiguous[i, j] = True
    return best, ambiguous


@pytest.mark.parametrize("perspective", [True, False])
def test_rasterize_matches_brute_force_and_chunking(monkeypatch, perspective: bool):
    generator = torch.Generator().manual_seed(3)
    image_size = (14, 18)
    batch, num_faces = 2, 25
    uv = torch.rand(batch, num_faces * 3, 2, generator=generator) * torch.tensor([24.0, 19.0]) - 3
    depth = 1.0 + 3.0 * torch.rand(batch, num_faces * 3, 1, generator=generator)
    screen = torch.cat([uv, depth], -1)
    faces = torch.arange(num_faces * 3).reshape(num_faces, 3)
    fragments = rasterize(screen, faces, image_size, perspective_correct=perspective)
    for b in range(batch):
        expected, ambiguous = reference_zbuffer(
            screen[b].double().numpy(), faces.numpy(), image_size, perspective
        )
        assert ambiguous.sum() < 10
        got = fragments.face_index[b].numpy()
        np.testing.assert_array_equal(got[~ambiguous], expected[~ambiguous])

    monkeypatch.setattr(rd, "_CANDIDATE_BUDGET", 37)
    chunked = rasterize(screen, faces, image_size, perspective_correct=perspective)
    assert torch.equal(chunked.face_index, fragments.face_index)
    assert torch.equal(chunked.bary, fragments.bary)
    assert torch.equal(chunked.depth, fragments.depth)


@pytest.mark.parametrize("budget", [rd._CANDIDATE_BUDGET, 7])
def test_equal_depth_ties_go_to_smallest_face_index(monkeypatch, budget: int):
    monkeypatch.setattr(rd, "_CANDIDATE_BUDGET", budget)
    vertices, faces = square(-0.53, 0.71, -0.22, 0.34, -2.0)
    duplicated = torch.cat([faces, faces])  # faces 2, 3 repeat faces 0, 1 exactly
    fragments = rasterize(
        project(vertices[None], ORTHO), duplicated, ORTHO.image_size, perspective_correct=False
    )
    face = fragments.face_index[fragments.mask]
    assert face.numel() == 60
    assert set(face.tolist()) == {0, 1}


def test_backface_culling_and_triangles_behind_camera():
    vertices, faces = square(-0.53, 0.71, -0.22, 0.34, -2.0)
    screen = project(vertices[None], ORTHO)
    front = rasterize(screen, faces, ORTHO.image_size, cull_backfaces=True)
    assert front.mask.sum() == 60
    back = rasterize(screen, faces.flip(1), ORTHO.image_size, cull_backfaces=True)
    assert not back.mask.any()
    both = rasterize(screen, faces.flip(1), ORTHO.image_size)
    assert torch.equal(both.mask, front.mask)

    camera, triangle, tri_faces = perspective_scene()
    behind = triangle.clone()
    behind[1, 2] = 0.5  # one corner behind the camera
    fragments = rasterize(project(behind[None], camera), tri_faces, camera.image_size)
    assert not fragments.mask.any()


def gradient_scene() -> tuple[Camera, torch.Tensor, torch.Tensor]:
    """Two triangles forming a bent quad in front of a small perspective camera, float64."""
    camera = Camera(fx=30.0, fy=28.0, cx=8.0, cy=7.0, image_size=(14, 16))
    vertices = torch.tensor(
        [[-0.21, -0.18, -1.1], [0.23, -0.2, -1.3], [0.19, 0.22, -1.05], [-0.2, 0.17, -0.95]],
        dtype=torch.float64,
    )
    return camera, vertices, torch.tensor([[0, 1, 2], [0, 2, 3]])


def test_gradients_match_finite_differences():
    camera, vertices, faces = gradient_scene()
    attributes = torch.rand(1, 4, 2, generator=torch.Generator().manual_seed(0)).double()

    def shade(verts: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
        fragments = rasterize(project(verts, camera), faces, camera.image_size)
        depth = torch.where(fragments.mask, fragments.depth, 0.0)
        return torch.cat([interpolate(attrs, faces, fragments), depth[..., None]], -1)

    verts = vertices[None].clone().requires_grad_(True)
    attrs = attributes.requires_grad_(True)
    reference = rasterize(project(verts, camera), faces, camera.image_size).face_index
    assert 0.3 < reference.ge(0).double().mean() < 0.9
    for seed in range(3):
        noise = 1e-5 * torch.randn(verts.shape, generator=torch.Generator().manual_seed(seed))
        jittered = rasterize(project(verts + noise, camera), faces, camera.image_size)
        assert torch.equal(jittered.face_index, reference), "coverage must not change under eps"
    assert torch.autograd.gradcheck(shade, (verts, attrs), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_render_gradients_match_finite_differences():
    camera, vertices, faces = gradient_scene()
    albedo = torch.rand(1, 4, 3, generator=torch.Generator().manual_seed(1)).double()
    light = torch.tensor([[0.2, 0.3, 1.0]], dtype=torch.float64)

    def image(verts: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
        return render(verts, faces, camera, albedo=colours, light_dir=light, background=0.5)[0]

    inputs = (vertices[None].clone().requires_grad_(True), albedo.requires_grad_(True))
    assert torch.autograd.gradcheck(image, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def real_sh_reference(degree: int, order: int, normals: np.ndarray) -> np.ndarray:
    """Real orthonormal SH built from scipy's complex Y_l^m (with Condon-Shortley phase)."""
    polar = np.arccos(np.clip(normals[:, 2], -1.0, 1.0))
    azimuth = np.mod(np.arctan2(normals[:, 1], normals[:, 0]), 2 * np.pi)
    complex_y = sph_harm_y(degree, abs(order), polar, azimuth)
    if order > 0:
        return math.sqrt(2) * (-1) ** order * complex_y.real
    if order < 0:
        return math.sqrt(2) * (-1) ** order * complex_y.imag
    return complex_y.real


def test_sh_basis_matches_scipy_and_closed_form():
    normals = torch.nn.functional.normalize(
        torch.randn(50, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64), dim=-1
    )
    basis = sh_basis(normals).numpy()
    order = [(0, 0), (1, -1), (1, 0), (1, 1), (2, -2), (2, -1), (2, 0), (2, 1), (2, 2)]
    for k, (degree, m) in enumerate(order):
        np.testing.assert_allclose(
            basis[:, k], real_sh_reference(degree, m, normals.numpy()), atol=1e-12
        )
    up = sh_basis(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)).numpy()
    c0, c1, c20 = (
        0.5 / math.sqrt(math.pi),
        math.sqrt(3 / (4 * math.pi)),
        math.sqrt(5 / (4 * math.pi)),
    )
    np.testing.assert_allclose(up, [c0, 0, c1, 0, 0, 0, c20, 0, 0], atol=1e-12)


def test_sh_shading_constant_and_linear():
    normals = torch.nn.functional.normalize(
        torch.randn(2, 5, 7, 3, generator=torch.Generator().manual_seed(1)), dim=-1
    )
    coeffs = torch.zeros(2, 9, 3)
    coeffs[:, 0] = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]])
    shaded = sh_shading(normals, coeffs)
    assert shaded.shape == (2, 5, 7, 3)
    expected = coeffs[:, 0].view(2, 1, 1, 3) * 0.28209479
    torch.testing.assert_close(shaded, expected.expand_as(shaded))

    random_coeffs = torch.randn(2, 9, 3, generator=torch.Generator().manual_seed(2))
    basis = sh_basis(normals)
    manual = sum(basis[..., k : k + 1] * random_coeffs[:, k].view(2, 1, 1, 3) for k in range(9))
    torch.testing.assert_close(sh_shading(normals, random_coeffs), manual)


def test_lambert_shading_is_clamped_dot_product():
    normals = torch.tensor([[[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [0.6, 0.0, 0.8]]])
    light = torch.tensor([[0.0, 2.0, 2.0]])  # not unit length: 45 degrees between y and z
    shaded = lambert_shading(normals, light, ambient=0.25, diffuse=0.5)
    assert shaded.shape == (1, 3, 1)
    expected = [0.25 + 0.5 * math.cos(math.pi / 4), 0.25, 0.25 + 0.5 * 0.8 / math.sqrt(2)]
    np.testing.assert_allclose(shaded[0, :, 0].numpy(), expected, rtol=1e-6)


def test_rotation_projection_and_camera_helpers():
    angles = torch.tensor([[0.3, -0.7, 1.1], [-1.2, 0.4, 0.05]], dtype=torch.float64)
    expected = Rotation.from_euler("xyz", angles.numpy()).as_matrix()  # extrinsic: Rz Ry Rx
    np.testing.assert_allclose(rotation_matrix(angles).numpy(), expected, atol=1e-12)

    points = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    shift = torch.tensor([[0.1, 0.2, -1.0], [0.0, -0.3, -2.0]], dtype=torch.float64)
    moved = transform_points(points, rotation_matrix(angles), shift)
    manual = np.einsum("bij,bvj->bvi", expected, points.numpy()) + shift.numpy()[:, None]
    np.testing.assert_allclose(moved.numpy(), manual, atol=1e-12)

    camera = Camera(
        fx=torch.tensor([100.0, 200.0]),
        fy=torch.tensor([110.0, 220.0]),
        cx=30.0,
        cy=20.0,
        image_size=(40, 60),
    )
    point = torch.tensor([[[0.5, 0.25, -2.0]], [[0.5, 0.25, -2.0]]])
    screen = project(point, camera)
    np.testing.assert_allclose(screen[:, 0].numpy(), [[55.0, 6.25, 2.0], [80.0, -7.5, 2.0]])

    face_cam = Camera.looking_at_face((300, 400), fov_deg=10.0, distance=1.5)
    assert (face_cam.cx, face_cam.cy, face_cam.distance) == (200.0, 150.0, 1.5)
    top = torch.tensor([[[0.0, 1.5 * math.tan(math.radians(5.0)), -1.5]]])
    np.testing.assert_allclose(project(top, face_cam)[0, 0].numpy(), [200.0, 0.0, 1.5], atol=1e-4)


def test_face_and_vertex_normals():
    # Vertex 0 is shared by a big triangle in the z = 0 plane and a small one in the x = 0 plane.
    vertices = torch.tensor(
        [[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]]
    )
    faces = torch.tensor([[0, 1, 2], [0, 3, 4]])
    torch.testing.assert_close(
        face_normals(vertices, faces)[0], torch.tensor([[0.0, 0, 1], [1, 0, 0]])
    )
    # Areas 2 and 0.5: the area-weighted normal at vertex 0 is normalise(2 * z + 0.5 * x).
    expected = torch.tensor([0.5, 0.0, 2.0]) / math.sqrt(4.25)
    torch.testing.assert_close(vertex_normals(vertices, faces)[0, 0], expected)

    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
    verts = torch.tensor(sphere.vertices, dtype=torch.float32)[None]
    normals = vertex_normals(verts, torch.tensor(sphere.faces))
    assert (normals * verts / 0.5).sum(-1).min() > 0.99


def visibility_scene(orthographic: bool) -> tuple[Camera, torch.Tensor, torch.Tensor, int]:
    """A sphere (radius 0.1 m, centre z = -1) and, in front, a small square occluder."""
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.1)
    sphere_v = torch.tensor(sphere.vertices, dtype=torch.float32) + torch.tensor([0.0, 0.0, -1.0])
    occluder_v, occluder_f = square(-0.03, 0.03, -0.025, 0.035, -0.8)
    vertices = torch.cat([sphere_v, occluder_v])[None]
    faces = torch.cat([torch.tensor(sphere.faces), occluder_f + len(sphere_v)])
    focal = 300.0
    camera = Camera(focal, focal, 48.0, 48.0, (96, 96), orthographic=orthographic)
    return camera, vertices, faces, len(sphere_v)


@pytest.mark.parametrize("orthographic", [False, True])
@pytest.mark.parametrize("use_vertices", [False, True])
def test_vertex_visibility_sphere_with_occluder(orthographic: bool, use_vertices: bool):
    camera, vertices, faces, num_sphere = visibility_scene(orthographic)
    sphere_v, sphere_f = vertices[:, :num_sphere], faces[:-2]
    normals = (sphere_v[0] - torch.tensor([0.0, 0.0, -1.0])) / 0.1
    view = (
        torch.tensor([0.0, 0.0, 1.0])
        if orthographic
        else -sphere_v[0] / sphere_v[0].norm(dim=-1, keepdim=True)
    )
    facing = (normals * view).sum(-1)

    def visible(verts: torch.Tensor, tris: torch.Tensor) -> torch.Tensor:
        screen = project(verts, camera)
        fragments = rasterize(screen, tris, camera.image_size, perspective_correct=not orthographic)
        cam_verts = verts if use_vertices else None
        return vertex_visibility(screen, tris, fragments, cam_verts, orthographic=orthographic)[0]

    alone = visible(sphere_v, sphere_f)
    assert alone[facing > 0.2].all()
    assert not alone[facing < -0.2].any()

    with_occluder = visible(vertices, faces)
    assert with_occluder[num_sphere:].all(), "the occluder's own corners are visible"
    screen = project(sphere_v, camera)[0]
    corners = project(vertices[:, num_sphere:], camera)[0]
    low, high = corners[:, :2].amin(0), corners[:, :2].amax(0)
    behind = ((screen[:, :2] > low + 2) & (screen[:, :2] < high - 2)).all(-1) & (facing > 0)
    clear = ((screen[:, :2] < low - 2) | (screen[:, :2] > high + 2)).any(-1) & (facing > 0.2)
    assert behind.sum() > 5 and clear.sum() > 50
    assert not with_occluder[:num_sphere][behind].any()
    assert with_occluder[:num_sphere][clear].all()


def test_render_combines_albedo_and_shading():
    vertices, faces = square(-0.53, 0.71, -0.22, 0.34, -2.0)
    albedo = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.5]]])
    image, fragments = render(
        vertices[None], faces, ORTHO, albedo=albedo, background=(0.1, 0.2, 0.3)
    )
    colour = interpolate(albedo, faces, fragments)
    mask = fragments.mask[0]
    # Flat square facing the default light at the camera: shading = 0.3 + 0.7 * 1.
    torch.testing.assert_close(image[0][mask], colour[0][mask])
    torch.testing.assert_close(
        image[0][~mask], torch.tensor([0.1, 0.2, 0.3]).expand(int((~mask).sum()), 3)
    )

    coeffs = torch.zeros(1, 9, 1)
    coeffs[0, 0, 0] = 2.0
    sh_image, _ = render(vertices[None], faces, ORTHO, albedo=albedo, sh_coeffs=coeffs)
    torch.testing.assert_close(sh_image[0][mask], colour[0][mask] * 2.0 * 0.28209479)


def test_render_preview_frames_the_mesh():
    box = trimesh.creation.box(extents=(0.3, 0.1, 0.1))
    colours = np.tile([[0.9, 0.1, 0.1]], (len(box.vertices), 1))
    image = render_preview(box.vertices, box.faces, image_size=(64, 80), colors=colours)
    assert image.shape == (64, 80, 3) and image.dtype == np.uint8
    for corner in (image[0, 0], image[0, -1], image[-1, 0], image[-1, -1]):
        np.testing.assert_array_equal(corner, [255, 255, 255])
    centre = image[32, 40].astype(int)
    assert centre[0] > 2 * centre[1] and centre[0] > 100

    def width(picture: np.ndarray) -> int:
        return int((picture != 255).any(-1).any(0).sum())

    turned = render_preview(
        torch.tensor(box.vertices), torch.tensor(box.faces), (64, 80), yaw_deg=90.0
    )
    assert width(turned) < 0.6 * width(image)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    camera, vertices, faces, _ = visibility_scene(orthographic=False)
    albedo = torch.rand(vertices.shape, generator=torch.Generator().manual_seed(0))
    image, fragments = render(vertices, faces, camera, albedo=albedo)
    cuda_image, cuda_fragments = render(vertices.cuda(), faces.cuda(), camera, albedo=albedo.cuda())
    assert torch.equal(cuda_fragments.face_index.cpu(), fragments.face_index)
    torch.testing.assert_close(cuda_image.cpu(), image, atol=1e-5, rtol=1e-5)
    screen = project(vertices, camera)
    visible = vertex_visibility(screen, faces, fragments, vertices)
    cuda_visible = vertex_visibility(screen.cuda(), faces.cuda(), cuda_fragments, vertices.cuda())
    assert torch.equal(cuda_visible.cpu(), visible)
