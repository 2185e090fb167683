"""KeyedModule: the same outputs as a TensorDictModule, written without converting each tensor."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule

from himo.modalities.keyed import KeyedModule


class TwoOutputs(torch.nn.Module):
    def forward(self, first: torch.Tensor, second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return first + second, first * second


def make_input() -> TensorDict:
    return TensorDict({"a": torch.arange(6.0).view(3, 2), ("group", "b"): torch.ones(3, 2) * 2}, batch_size=[3])


def test_writes_what_a_tensordict_module_writes_without_converting_tensors(monkeypatch) -> None:
    in_keys, out_keys = ["a", ("group", "b")], [("group", "sum"), ("out", "nested", "product")]
    expected = TensorDictModule(TwoOutputs(), in_keys=in_keys, out_keys=out_keys)(make_input())

    def refuse(*args, **kwargs):
        raise AssertionError("TensorDict.from_any was called")

    monkeypatch.setattr(TensorDict, "from_any", refuse)
    written = KeyedModule(TwoOutputs(), in_keys=in_keys, out_keys=out_keys)(make_input())
    assert set(written.keys(True, True)) == set(expected.keys(True, True))
    for key in expected.keys(True, True):
        torch.testing.assert_close(written.get(key), expected.get(key))


def test_a_wrong_number_of_outputs_is_an_error() -> None:
    module = KeyedModule(TwoOutputs(), in_keys=["a", ("group", "b")], out_keys=["only"])
    with pytest.raises(RuntimeError, match="out_keys"):
        module(make_input())
