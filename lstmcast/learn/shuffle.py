"""An epoch's shuffled order of n windows, computed batch by batch instead of stored.

A stored permutation of 10 million training windows costs 40 MB of memory (and of every
state.pt). A Feistel network keyed by a few random numbers is a pseudo-random bijection of
0…n−1 (Luby–Rackoff; tf.random.experimental.index_shuffle uses the same idea), so
`order[positions]` can be computed from the keys alone, and resuming needs only the keys.
"""

from __future__ import annotations

import numpy as np
import torch

ROUNDS = 4
_MULTIPLIERS = (0x2C1B3C6D, 0x297A2D39)  # odd, below 2**30: products of 31-bit values stay inside int64


class Shuffle:
    """A keyed permutation of 0…n−1, indexed like a tensor."""

    def __init__(self, n: int, keys: torch.Tensor) -> None:
        self.n, self.keys = n, keys.to(torch.int64).cpu()
        half_bits = max(1, -(-max(n - 1, 1).bit_length() // 2))  # the domain 4^half_bits is ≥ n and ≤ 4n
        self.half_bits, self.mask = half_bits, (1 << half_bits) - 1

    @classmethod
    def draw(cls, n: int, generator: torch.Generator) -> Shuffle:
        return cls(n, torch.randint(0, 2**31 - 1, (ROUNDS,), generator=generator, dtype=torch.int64))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, positions: torch.Tensor) -> torch.Tensor:
        # numpy: a batch is a few hundred numbers, where numpy's per-operation cost is a fifth of torch's
        out = self._permute(positions.cpu().numpy().astype(np.int64))
        outside = out >= self.n
        while outside.any():  # cycle-walking: re-permute values beyond n until they land inside, still a bijection
            out[outside] = self._permute(out[outside])
            outside = out >= self.n
        return torch.from_numpy(out).to(positions.device)

    def _permute(self, x: np.ndarray) -> np.ndarray:
        left, right = x >> self.half_bits, x & self.mask
        for key in self.keys.tolist():
            left, right = right, left ^ (_mix(right, key) & self.mask)
        return (left << self.half_bits) | right


def _mix(x: np.ndarray, key: int) -> np.ndarray:
    h = (x * _MULTIPLIERS[0] + key) & 0x7FFFFFFF
    h ^= h >> 15
    h = (h * _MULTIPLIERS[1]) & 0x7FFFFFFF
    return h ^ (h >> 13)
