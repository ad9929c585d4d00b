"""Fixed sine-cosine positional embeddings (1-D sequences and 2-D patch grids)."""

from __future__ import annotations

import torch


def sincos_1d(
    dim: int, positions: torch.Tensor, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Embed positions (N,) as (N, dim): sin of dim/2 frequencies, then cos of the same
    (computed in float64, returned in ``dtype``)."""
    if dim % 2:
        raise ValueError(f"1-D sin-cos embedding needs an even width, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega  # (dim/2,)
    angles = positions.to(torch.float64)[:, None] * omega[None, :]  # (N, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1).to(dtype)


def sincos_grid(
    dim: int, grid: tuple[int, ...], dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Embeddings (L, dim) for the tokens of a 1-D grid (L,) or a row-major 2-D grid (H, W).

    For 2-D, the first half of the width encodes the row, the second half the column.
    """
    if len(grid) == 1:
        return sincos_1d(dim, torch.arange(grid[0]), dtype)
    if len(grid) == 2:
        if dim % 4:
            raise ValueError(f"2-D sin-cos embedding needs a width divisible by 4, got {dim}")
        rows, cols = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
        return torch.cat(
            [
                sincos_1d(dim // 2, rows.reshape(-1), dtype),
                sincos_1d(dim // 2, cols.reshape(-1), dtype),
            ],
            dim=1,
        )
    raise ValueError(f"positional grids are 1-D or 2-D, got {grid}")


def with_cls_row(pos: torch.Tensor) -> torch.Tensor:
    """Prepend the CLS token's position: a zero row. (L, D) -> (1 + L, D)."""
    return torch.cat([torch.zeros(1, pos.shape[1], dtype=pos.dtype), pos], dim=0)
