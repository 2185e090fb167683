"""The grid encoder: cell codes are categories, embedded per channel and summed; bad codes are named."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from himo.modalities.grid import CellEmbedding, GridEncoderConfig


def test_a_cell_is_the_sum_of_its_channels_embeddings() -> None:
    cells = CellEmbedding(channels=3, codes_per_channel=4, features=5)
    grid = torch.randint(0, 4, (2, 3, 6, 7), dtype=torch.uint8)
    embedded = cells(grid)
    assert embedded.shape == (2, 5, 6, 7)
    table = cells.table.weight
    expected = table[grid[:, 0].long()] + table[4 + grid[:, 1].long()] + table[8 + grid[:, 2].long()]
    torch.testing.assert_close(embedded, expected.permute(0, 3, 1, 2))


def test_a_code_outside_the_table_is_a_clear_error(make_context) -> None:
    context = make_context("image")
    module = GridEncoderConfig(key="obs", codes_per_channel=8).build(context)
    grid = torch.zeros(2, 3, 7, 7, dtype=torch.uint8)
    grid[1, 2, 3, 3] = 200  # a pixel value, not a cell code
    with pytest.raises(ValueError, match=r"cell codes must lie in \[0, 8\); got 0\.\.200.*cnn encoder for pixels"):
        module(TensorDict({context.in_key: grid}, batch_size=[2]))
