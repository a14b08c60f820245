"""Random training patches with the 8 dihedral augmentations (and a Z flip for volumes), and held-out
validation patches; 2-D ``(N, C, Y, X)`` or 3-D ``(N, C, Z, Y, X)`` data."""

from __future__ import annotations

import numpy as np


def dihedral(patch: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 dihedral transforms (k in 0..7) of the last two axes."""
    out = np.rot90(patch, k % 4, axes=(-2, -1))
    if k >= 4:
        out = out[..., ::-1]
    return out


class PatchSampler:
    """Draws training patches from ``(N, C, Y, X)`` data, keeping some blocks out for validation.

    The data is tiled into a grid of ``patch_size`` blocks; about
    ``val_fraction`` of them (at least one, at most ``max_val``) are held out and
    training crops never overlap them.  With fewer than four blocks nothing can
    be spared, and validation uses fixed crops of the training data instead
    (``self.held_out`` is then False).
    """

    def __init__(self, data: np.ndarray, patch_size: int, *, val_fraction: float = 0.1, max_val: int = 32, seed: int = 0,
                 patch_depth: int | None = None):
        if data.ndim not in (4, 5):
            raise ValueError("data must be (N, C, Y, X) or (N, C, Z, Y, X)")
        self.data = data
        self.volumes = data.ndim == 5
        if not self.volumes:  # one code path: a 2-D sample is a volume of one slice
            data, patch_depth = data[:, :, None], 1
        self._volumes_view = data
        n, _, depth, h, w = data.shape
        self.patch_size = p = int(min(patch_size, h, w))
        self.patch_depth = pz = int(min(patch_depth or p, depth))
        self.rng = np.random.default_rng(seed)
        # validation blocks are whole columns in Z (one block deep): a training crop overlaps one when
        # its Y-X square does
        blocks = [(i, y, x) for i in range(n) for y in range(0, h - p + 1, p) for x in range(0, w - p + 1, p)]
        self._z_val = max(0, (depth - pz) // 2)
        n_val = int(np.clip(round(val_fraction * len(blocks)), 1, max_val)) if len(blocks) >= 4 else 0
        self.held_out = n_val > 0
        pick = self.rng.choice(len(blocks), size=n_val, replace=False) if n_val else np.array([], int)
        self.val_blocks = np.array([blocks[i] for i in sorted(pick)], dtype=np.int64).reshape(-1, 3)
        if not self.held_out:
            # tiny data: fixed (non-augmented) crops of the training data
            self.val_blocks = np.array([blocks[0]], dtype=np.int64)

    def _squeeze(self, arr: np.ndarray) -> np.ndarray:
        return arr if self.volumes else arr[:, :, 0]

    def validation_patches(self) -> np.ndarray:
        p, pz, z = self.patch_size, self.patch_depth, self._z_val
        return self._squeeze(np.stack([self._volumes_view[i, :, z : z + pz, y : y + p, x : x + p]
                                       for i, y, x in self.val_blocks]))

    def _overlaps_val(self, i: int, y: int, x: int) -> bool:
        if not self.held_out:
            return False
        vb = self.val_blocks
        p = self.patch_size
        hit = (vb[:, 0] == i) & (np.abs(vb[:, 1] - y) < p) & (np.abs(vb[:, 2] - x) < p)
        return bool(hit.any())

    def batch(self, batch_size: int) -> np.ndarray:
        """A ``(B, C, P, P)`` (``(B, C, Pz, P, P)`` for volumes) float32 batch of random, randomly
        transformed crops."""
        n, _, depth, h, w = self._volumes_view.shape
        p, pz = self.patch_size, self.patch_depth
        out = []
        for _ in range(batch_size):
            for _attempt in range(50):
                i = int(self.rng.integers(n))
                y = int(self.rng.integers(h - p + 1))
                x = int(self.rng.integers(w - p + 1))
                if not self._overlaps_val(i, y, x):
                    break
            z = int(self.rng.integers(depth - pz + 1)) if self.volumes else 0
            crop = dihedral(self._volumes_view[i, :, z : z + pz, y : y + p, x : x + p], int(self.rng.integers(8)))
            if self.volumes and self.rng.integers(2):
                crop = crop[:, ::-1]
            out.append(crop)
        return np.ascontiguousarray(self._squeeze(np.stack(out)), dtype=np.float32)
