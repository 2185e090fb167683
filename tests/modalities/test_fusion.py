"""Fusion of modality embeddings: both kinds, any batch dims, gradients, options and errors."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from himo.envs import keys
from himo.modalities.fusion import FUSIONS, build_fusion

GROUP = "agents"
MODALITIES = {"image": 8, "text": 6, "audio": 4}  # embedding sizes may differ per modality
IN_KEYS = [keys.embedding(GROUP, name) for name in MODALITIES]
OUT_KEY = (GROUP, keys.FUSED)


def embeddings(batch: tuple[int, ...]) -> TensorDict:
    data = TensorDict({}, batch_size=batch)
    for key, size in zip(IN_KEYS, MODALITIES.values()):
        data[key] = torch.randn(*batch, size, requires_grad=True)
    return data


@pytest.mark.parametrize("kind", sorted(FUSIONS))
@pytest.mark.parametrize("batch", [(4,), (3, 2), (2, 3, 2)])
def test_fusion_handles_batch_dims_and_backpropagates(kind, batch):
    module = build_fusion(kind, IN_KEYS, OUT_KEY, embedding_dim=12, input_dims=list(MODALITIES.values()))
    data = embeddings(batch)
    inputs = [data[key] for key in IN_KEYS]
    fused = module(data)[OUT_KEY]
    assert fused.shape == (*batch, 12) == (*batch, module.module.output_dim)
    fused.square().sum().backward()
    assert all(tensor.grad is not None and tensor.grad.abs().sum() > 0 for tensor in inputs)
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_attention_fusion_tags_tokens_with_learned_modality_embeddings():
    module = build_fusion("attention", IN_KEYS, OUT_KEY, embedding_dim=12, input_dims=list(MODALITIES.values()))
    network = module.module
    assert network.modality_embeddings.shape == (len(MODALITIES), 64)
    assert network.modality_embeddings.requires_grad and network.cls_token.requires_grad
    module(embeddings((3,)))[OUT_KEY].sum().backward()
    assert network.modality_embeddings.grad.abs().sum(-1).gt(0).all()  # every modality's tag learns


def test_concat_without_projection_is_the_plain_concatenation():
    module = build_fusion("concat", IN_KEYS, OUT_KEY, 12, list(MODALITIES.values()), project=False)
    data = embeddings((2, 3))
    assert module.module.output_dim == sum(MODALITIES.values())
    torch.testing.assert_close(module(data)[OUT_KEY], torch.cat([data[key] for key in IN_KEYS], -1))


def test_input_dims_default_to_embedding_dim():
    module = build_fusion("attention", IN_KEYS[:2], OUT_KEY, embedding_dim=8, layers=2, heads=2, hidden=16)
    data = TensorDict({key: torch.randn(5, 8) for key in IN_KEYS[:2]}, batch_size=(5,))
    assert module(data)[OUT_KEY].shape == (5, 8)


def test_unknown_kind_and_bad_options_are_rejected():
    with pytest.raises(ValueError, match="unknown fusion 'sum'.*attention.*concat"):
        build_fusion("sum", IN_KEYS, OUT_KEY, 8)
    with pytest.raises(ValueError, match="depth"):
        build_fusion("attention", IN_KEYS, OUT_KEY, 8, depth=2)
    with pytest.raises(ValueError, match="layers"):
        build_fusion("attention", IN_KEYS, OUT_KEY, 8, layers=0)
    with pytest.raises(ValueError, match="multiple of heads"):
        build_fusion("attention", IN_KEYS, OUT_KEY, 8, hidden=30, heads=4)
    with pytest.raises(ValueError, match="input_dims"):
        build_fusion("concat", IN_KEYS, OUT_KEY, 8, input_dims=[8])
