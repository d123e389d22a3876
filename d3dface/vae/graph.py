"""Mesh graphs of the template: edges, local-hop geodesic distances, uniform Laplacian.

Distances between template vertices are shortest paths along mesh edges where each edge
is measured in units of the local edge length (``|e| / mean(h_u, h_v)``, ``h`` = a vertex's
mean incident edge length). So one edge is about one unit anywhere on the mesh: the distance
counts hops, as on a regular mesh, but is continuous and finer where the mesh is finer (the
face is meshed more densely than the back of the head, and so gets more pooled vertices).
Separate components (the eyeballs) are joined to the rest by one bridge edge of length 1
between their closest vertex pair, so every vertex can reach every other.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree
from torch import Tensor

_DIJKSTRA_CHUNK = 512


def mesh_edges(faces: np.ndarray) -> np.ndarray:
    """Unique undirected edges of a mesh: (F, 3) -> (E, 2) int64, ``e[:, 0] < e[:, 1]``."""
    pairs = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return np.unique(np.sort(pairs, axis=1).astype(np.int64), axis=0)


def bridge_components(vertices: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Edges that join every extra connected component to the largest one.

    Args:
        vertices: (V, 3) positions.
        edges: (E, 2) undirected edges.

    Returns:
        (C - 1, 2) bridges, one per component other than the largest: its vertex closest to
        the largest component, and that closest vertex.
    """
    n = vertices.shape[0]
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    n_components, labels = connected_components(graph, directed=False)
    main = np.bincount(labels).argmax()
    main_vertices = np.flatnonzero(labels == main)
    tree = cKDTree(vertices[main_vertices])
    bridges = []
    for component in range(n_components):
        if component == main:
            continue
        members = np.flatnonzero(labels == component)
        distance, nearest = tree.query(vertices[members])
        best = int(distance.argmin())
        bridges.append((members[best], main_vertices[nearest[best]]))
    return np.asarray(bridges, dtype=np.int64).reshape(-1, 2)


def local_hop_graph(vertices: np.ndarray, faces: np.ndarray) -> csr_matrix:
    """Symmetric (V, V) sparse graph of edge lengths in local-hop units, components bridged."""
    n = vertices.shape[0]
    edges = mesh_edges(faces)
    length = np.linalg.norm(vertices[edges[:, 0]] - vertices[edges[:, 1]], axis=1)
    incident = np.bincount(edges.ravel(), weights=np.repeat(length, 2), minlength=n)
    degree = np.bincount(edges.ravel(), minlength=n)
    mean_length = incident / np.maximum(degree, 1)
    hops = length / (0.5 * (mean_length[edges[:, 0]] + mean_length[edges[:, 1]]))
    bridges = bridge_components(vertices, edges)
    all_edges = np.concatenate([edges, bridges])
    weights = np.concatenate([hops, np.ones(len(bridges))])
    rows = np.concatenate([all_edges[:, 0], all_edges[:, 1]])
    cols = np.concatenate([all_edges[:, 1], all_edges[:, 0]])
    return coo_matrix((np.tile(weights, 2), (rows, cols)), shape=(n, n)).tocsr()


def geodesic_distances(graph: csr_matrix, sources: np.ndarray, limit: float = np.inf) -> np.ndarray:
    """Shortest-path distances from ``sources`` to every vertex: (S,) -> (S, V) float32.

    Distances above ``limit`` are ``inf`` (and cost no search time).
    """
    distances = np.empty((len(sources), graph.shape[0]), dtype=np.float32)
    for start in range(0, len(sources), _DIJKSTRA_CHUNK):
        chunk = sources[start : start + _DIJKSTRA_CHUNK]
        distances[start : start + len(chunk)] = dijkstra(
            graph, directed=False, indices=chunk, limit=limit
        )
    return distances


class UniformLaplacian(torch.nn.Module):
    """Uniform graph Laplacian of a mesh: ``L(x)_i = x_i - mean_{j in N(i)} x_j``."""

    def __init__(self, faces: Tensor, n_vertices: int) -> None:
        """faces: (F, 3) triangles of the template topology; the operator lives on their
        device."""
        super().__init__()
        edges = torch.from_numpy(mesh_edges(faces.cpu().numpy())).to(faces.device)
        source = torch.cat([edges[:, 0], edges[:, 1]])
        target = torch.cat([edges[:, 1], edges[:, 0]])
        degree = torch.bincount(target, minlength=n_vertices).clamp(min=1)
        self.register_buffer("source", source, persistent=False)
        self.register_buffer("target", target, persistent=False)
        self.register_buffer("inverse_degree", 1.0 / degree.float(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """(B, V, C) -> (B, V, C) Laplacian coordinates."""
        neighbour_sum = torch.zeros_like(x).index_add_(1, self.target, x[:, self.source])
        return x - neighbour_sum * self.inverse_degree[:, None]
