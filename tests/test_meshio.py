"""Mesh files: the three formats agree, GLB follows glTF's rules (linear colours, normals, a
material for its colours), PLY and OBJ carry smooth normals too, and a broken mesh is refused
instead of written."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import trimesh

from d3dface.meshio import GLB_MATERIAL, export_mesh, srgb_to_linear


def _gltf_json(path: Path) -> dict:
    """The JSON chunk of a binary glTF file (header, then the first chunk, glTF 2.0 spec)."""
    data = path.read_bytes()
    magic, version, _ = struct.unpack("<4sII", data[:12])
    assert (magic, version) == (b"glTF", 2)
    length, kind = struct.unpack("<I4s", data[12:20])
    assert kind == b"JSON"
    return json.loads(data[20 : 20 + length])


def test_srgb_to_linear_matches_the_standard() -> None:
    # IEC 61966-2-1: the linear segment ends at 0.04045; mid-grey 0.5 is 0.2140 in linear light
    values = srgb_to_linear(np.array([0.0, 0.04045, 0.5, 1.0]))
    np.testing.assert_allclose(values, [0.0, 0.04045 / 12.92, 0.21404, 1.0], atol=1e-5)
    assert np.all(np.diff(srgb_to_linear(np.linspace(0, 1, 101))) > 0)


def test_glb_ply_obj_hold_the_same_mesh_and_glb_follows_gltf(tmp_path: Path) -> None:
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.1)
    rng = np.random.default_rng(0)
    colours = rng.uniform(0.1, 0.9, (len(sphere.vertices), 3))
    files = {
        suffix: export_mesh(tmp_path / f"m{suffix}", sphere.vertices, sphere.faces, colours)
        for suffix in (".glb", ".ply", ".obj")
    }
    ply = trimesh.load(files[".ply"], process=False)
    np.testing.assert_allclose(ply.vertices, sphere.vertices, atol=1e-6)
    np.testing.assert_array_equal(ply.faces, sphere.faces)
    np.testing.assert_array_equal(ply.visual.vertex_colors[:, :3], np.round(colours * 255))
    obj = trimesh.load(files[".obj"], process=False)
    np.testing.assert_allclose(obj.vertices, sphere.vertices, atol=1e-6)

    glb = next(iter(trimesh.load(files[".glb"], process=False).geometry.values()))
    np.testing.assert_allclose(glb.vertices, sphere.vertices, atol=1e-6)
    np.testing.assert_array_equal(glb.faces, sphere.faces)
    # glTF's COLOR_0 is linear light: the photo's sRGB colours are converted
    stored = glb.visual.vertex_attributes["color"][:, :3]
    np.testing.assert_array_equal(stored, np.round(srgb_to_linear(colours) * 255))
    tree = _gltf_json(files[".glb"])
    primitive = tree["meshes"][0]["primitives"][0]
    assert {"POSITION", "NORMAL", "COLOR_0"} <= set(primitive["attributes"])
    assert tree["materials"][primitive["material"]] == GLB_MATERIAL
    # smooth normals that point out of the sphere
    normals = np.asarray(glb.vertex_normals)
    outward = np.sum(normals * sphere.vertices, axis=1) / np.linalg.norm(sphere.vertices, axis=1)
    assert outward.min() > 0.95


def test_ply_and_obj_carry_smooth_vertex_normals(tmp_path: Path) -> None:
    # without normals in the file, Blender's PLY and OBJ importers shade every triangle flat
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.1)
    colours = np.full((len(sphere.vertices), 3), 0.5)
    outward = sphere.vertices / np.linalg.norm(sphere.vertices, axis=1, keepdims=True)

    ply_path = export_mesh(tmp_path / "m.ply", sphere.vertices, sphere.faces, colours)
    header = ply_path.read_bytes().split(b"end_header")[0].decode("ascii")
    for name in ("nx", "ny", "nz"):
        assert f"property float {name}" in header
    ply = trimesh.load(ply_path, process=False)
    assert np.sum(ply.vertex_normals * outward, axis=1).min() > 0.95

    obj_path = export_mesh(tmp_path / "m.obj", sphere.vertices, sphere.faces, colours)
    lines = obj_path.read_text().splitlines()
    normals = np.array([line.split()[1:] for line in lines if line.startswith("vn ")], float)
    assert normals.shape == sphere.vertices.shape
    assert np.sum(normals * outward, axis=1).min() > 0.95
    # each corner uses its vertex's normal (f v//vn with vn = v): vertex i keeps normal i
    corners = [c for line in lines if line.startswith("f ") for c in line.split()[1:]]
    assert len(corners) == 3 * len(sphere.faces)
    assert all(c.split("//")[0] == c.split("//")[1] for c in corners)


def test_a_broken_mesh_is_refused(tmp_path: Path) -> None:
    sphere = trimesh.creation.icosphere(subdivisions=1)
    vertices = np.array(sphere.vertices)
    vertices[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite vertex positions"):
        export_mesh(tmp_path / "bad.glb", vertices, sphere.faces)
    colours = np.full((len(sphere.vertices), 3), np.inf)
    with pytest.raises(ValueError, match="NaN or infinite vertex colours"):
        export_mesh(tmp_path / "bad.ply", sphere.vertices, sphere.faces, colours)
    with pytest.raises(ValueError, match="unsupported mesh format"):
        export_mesh(tmp_path / "bad.stl", sphere.vertices, sphere.faces)
    assert not list(tmp_path.iterdir())
