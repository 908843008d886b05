"""The Huffman tree of hierarchical softmax, as padded arrays (gensim's construction)."""

from __future__ import annotations

import dataclasses
import heapq

import numpy as np


@dataclasses.dataclass
class HuffmanTree:
    """Word w's path: inner nodes points[w, :lengths[w]] (root first) and the bits codes[w, :lengths[w]].

    Inner nodes are numbered 0..V-2 (the root is V-2); padding is 0 with code 0 beyond the length.
    """

    codes: np.ndarray    # uint8[V, L]
    points: np.ndarray   # int32[V, L]
    lengths: np.ndarray  # int32[V]

    @property
    def num_inner(self) -> int:
        return max(len(self.lengths) - 1, 1)

    def mask(self) -> np.ndarray:
        return np.arange(self.codes.shape[1])[None, :] < self.lengths[:, None]


def build_huffman(counts) -> HuffmanTree:
    """Merges the two least frequent nodes until one is left; left child gets bit 0."""
    counts = np.asarray(counts, np.int64)
    v = len(counts)
    if v == 0:
        raise ValueError("cannot build a Huffman tree over an empty vocabulary")
    if v == 1:  # a lone word: one inner node, one bit
        return HuffmanTree(np.zeros((1, 1), np.uint8), np.zeros((1, 1), np.int32),
                           np.ones(1, np.int32))
    heap = [(int(c), i) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    parent = np.zeros(2 * v - 1, np.int64)
    bit = np.zeros(2 * v - 1, np.uint8)
    for k in range(v - 1):
        c1, a = heapq.heappop(heap)
        c2, b = heapq.heappop(heap)
        node = v + k
        parent[a], parent[b], bit[b] = node, node, 1
        heapq.heappush(heap, (c1 + c2, node))
    root = 2 * v - 2
    # Depths top-down: a node's depth is its parent's plus one (parents have larger numbers).
    depth = np.zeros(2 * v - 1, np.int32)
    for node in range(root - 1, -1, -1):
        depth[node] = depth[parent[node]] + 1
    lengths = depth[:v]
    max_len = int(lengths.max())
    codes = np.zeros((v, max_len), np.uint8)
    points = np.zeros((v, max_len), np.int32)
    node = np.arange(v)
    for step in range(max_len):  # walk every word up one level at a time (vectorised)
        active = step < lengths
        pos = lengths - 1 - step  # fill from the leaf end towards the root
        idx = np.flatnonzero(active)
        codes[idx, pos[idx]] = bit[node[idx]]
        points[idx, pos[idx]] = parent[node[idx]] - v
        node = np.where(active, parent[node], node)
    return HuffmanTree(codes, points, lengths.astype(np.int32))
