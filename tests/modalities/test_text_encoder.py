"""The text encoder: a local pretrained model with its own tokenizer, clear errors, the embedding cache."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, BertTokenizer

from himo.envs import keys
from himo.envs.text import encode_texts
from himo.modalities.text import TransformerEncoderConfig

MODEL_WORDS = "[PAD] [UNK] [CLS] [SEP] [MASK] go to pick up open the a red green blue ball key box door".split()
MISSIONS = ["go to the red ball", "pick up a blue key", "open the door"]


@pytest.fixture(scope="module")
def pretrained_dir(tmp_path_factory) -> Path:
    """A tiny BERT and its WordPiece tokenizer (a different vocabulary from the env's), saved locally."""
    directory = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = BertTokenizer(vocab={word: index for index, word in enumerate(MODEL_WORDS)})
    config = BertConfig(
        vocab_size=len(MODEL_WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32,
    )
    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def text_batch(tokenizer, texts: list[str], length: int = 8) -> dict[str, torch.Tensor]:
    ids, mask = encode_texts(tokenizer, texts, max_length=length)
    return {keys.INPUT_IDS: ids, keys.ATTENTION_MASK: mask}


def encode(module, context, observation: dict[str, torch.Tensor]) -> torch.Tensor:
    batch = observation[keys.INPUT_IDS].shape[:-1]
    return module(TensorDict({context.in_key: observation}, batch_size=batch))[context.out_key]


def test_pretrained_model_reads_the_env_text_through_its_own_tokenizer(pretrained_dir, make_context, tokenizer):
    context = make_context("text")
    config = TransformerEncoderConfig(key="obs", pretrained=str(pretrained_dir), embedding_dim=16, frozen=True)
    module = config.build(context)
    assert isinstance(module.module.head, torch.nn.Identity)  # embedding_dim == the model's width
    embedding = encode(module, context, text_batch(tokenizer, MISSIONS))

    model = AutoModel.from_pretrained(pretrained_dir).eval()
    model_tokenizer = AutoTokenizer.from_pretrained(pretrained_dir)
    encoded = model_tokenizer(MISSIONS, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**encoded).last_hidden_state
    mask = encoded["attention_mask"].unsqueeze(-1).float()
    torch.testing.assert_close(embedding, (hidden * mask).sum(1) / mask.sum(1), rtol=1e-4, atol=1e-5)


def test_pretrained_with_a_projection_trains_end_to_end(pretrained_dir, make_context, tokenizer):
    context = make_context("text")
    module = TransformerEncoderConfig(key="obs", pretrained=str(pretrained_dir), embedding_dim=8).build(context)
    encode(module, context, text_batch(tokenizer, MISSIONS)).sum().backward()
    assert all(parameter.grad is not None for parameter in module.module.head.parameters())
    assert module.module.model.embeddings.word_embeddings.weight.grad is not None


def test_frozen_pretrained_with_train_head_trains_only_the_head(pretrained_dir, make_context, tokenizer):
    context = make_context("text")
    config = TransformerEncoderConfig(
        key="obs", pretrained=str(pretrained_dir), embedding_dim=8, frozen=True, train_head=True
    )
    module = config.build(context)
    trainable = {name for name, parameter in module.named_parameters() if parameter.requires_grad}
    assert trainable == {"module.head.weight", "module.head.bias"}
    encode(module, context, text_batch(tokenizer, MISSIONS)).sum().backward()
    assert module.module.head.weight.grad is not None


def test_missing_pretrained_directory_is_a_clear_error(tmp_path, make_context):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match="no-such-model.*does not exist"):
        TransformerEncoderConfig(key="obs", pretrained=str(missing)).build(make_context("text"))


def test_pretrained_from_an_installed_package(pretrained_dir, tmp_path, monkeypatch, make_context, tokenizer):
    (tmp_path / "himo_fake_weights.py").write_text(f"def get_model_path():\n    return {str(pretrained_dir)!r}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "himo_fake_weights", raising=False)
    context = make_context("text")
    config = TransformerEncoderConfig(key="obs", pretrained="package:himo_fake_weights", embedding_dim=16)
    assert encode(config.build(context), context, text_batch(tokenizer, MISSIONS)).shape == (3, 16)
    with pytest.raises(ImportError, match="not installed"):
        TransformerEncoderConfig(key="obs", pretrained="package:himo_no_such_package").build(context)


@pytest.mark.parametrize("pretrained", [False, True])
def test_cache_matches_uncached_encoding_and_is_hit_on_repeats(pretrained, pretrained_dir, make_context, tokenizer):
    context = make_context("text")
    options = {"pretrained": str(pretrained_dir)} if pretrained else {}
    cached = TransformerEncoderConfig(key="obs", frozen=True, embedding_dim=8, **options).build(context)
    uncached = TransformerEncoderConfig(key="obs", frozen=True, cache=False, embedding_dim=8, **options).build(context)
    uncached.load_state_dict(cached.state_dict())
    encoder = cached.module
    assert encoder.cache and not uncached.module.cache

    # [envs=2, agents=3], with repeats inside the batch.
    observation = text_batch(tokenizer, [MISSIONS[0], MISSIONS[1], MISSIONS[0], MISSIONS[2], MISSIONS[0], MISSIONS[1]])
    observation = {key: value.reshape(2, 3, -1) for key, value in observation.items()}
    first = encode(cached, context, observation)
    assert encoder.cache_info() == (0, 3, 3)  # three distinct missions, each encoded once
    torch.testing.assert_close(first, encode(uncached, context, observation), rtol=1e-5, atol=1e-6)

    again = encode(cached, context, observation)
    assert encoder.cache_info() == (3, 3, 3)
    torch.testing.assert_close(again, first, rtol=0, atol=0)

    # Padding that the mask hides does not make a new sequence.
    noisy = dict(observation)
    noisy[keys.INPUT_IDS] = observation[keys.INPUT_IDS].masked_fill(~observation[keys.ATTENTION_MASK], 5)
    torch.testing.assert_close(encode(cached, context, noisy), first, rtol=0, atol=0)
    assert encoder.cache_info().misses == 3

    cached.load_state_dict(cached.state_dict())  # new weights invalidate the cache
    assert encoder.cache_info() == (0, 0, 0)


def test_cache_keeps_at_most_cache_size_sequences(make_context, tokenizer):
    context = make_context("text")
    module = TransformerEncoderConfig(key="obs", frozen=True, cache_size=2, embedding_dim=8).build(context)
    embedding = encode(module, context, text_batch(tokenizer, MISSIONS))
    assert embedding.shape == (3, 8) and module.module.cache_info().size == 2
    torch.testing.assert_close(encode(module, context, text_batch(tokenizer, MISSIONS)), embedding)


def test_trained_encoder_encodes_each_distinct_sequence_once_with_the_same_values_and_gradients(
    make_context, tokenizer, monkeypatch
):
    context = make_context("text")
    module = TransformerEncoderConfig(key="obs", hidden=16, layers=1, heads=2, embedding_dim=8).build(context)
    encoder = module.module
    texts = [MISSIONS[0], MISSIONS[1], MISSIONS[0], MISSIONS[2], MISSIONS[0], MISSIONS[1]]
    observation = text_batch(tokenizer, texts)
    observation[keys.INPUT_IDS][2, -1] = 5  # a different id under the mask: still the same sequence

    encoder.zero_grad()
    per_row = encoder.head(encoder.encode(observation[keys.INPUT_IDS], observation[keys.ATTENTION_MASK]))
    weights = torch.linspace(0.5, 2.0, len(texts)).unsqueeze(-1)
    (per_row * weights).sum().backward()
    expected = {name: parameter.grad.clone() for name, parameter in encoder.named_parameters()}

    rows_encoded = []
    original = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda ids, mask: rows_encoded.append(len(ids)) or original(ids, mask))
    encoder.zero_grad()
    shared = encode(module, context, observation)
    (shared * weights).sum().backward()
    assert rows_encoded == [3]
    torch.testing.assert_close(shared, per_row.detach(), rtol=1e-5, atol=1e-6)
    for name, parameter in encoder.named_parameters():
        torch.testing.assert_close(parameter.grad, expected[name], rtol=1e-4, atol=1e-6, msg=name)


def test_a_trained_encoder_reads_its_cache_without_gradient_until_its_weights_change(make_context, tokenizer):
    context = make_context("text")
    module = TransformerEncoderConfig(key="obs", hidden=16, layers=1, heads=2, embedding_dim=8).build(context)
    encoder = module.module
    assert encoder.cache and not encoder.frozen  # on by default
    observation = text_batch(tokenizer, [MISSIONS[0], MISSIONS[1], MISSIONS[0]])
    with torch.no_grad():
        first = encode(module, context, observation)
        again = encode(module, context, observation)
    assert encoder.cache_info() == (2, 2, 2)  # two distinct missions: encoded once, then read
    torch.testing.assert_close(again, first, rtol=0, atol=0)

    # With gradient (learning), the cache is not read and the gradient reaches the model.
    encode(module, context, observation).sum().backward()
    assert encoder.cache_info() == (2, 2, 2)
    assert any(parameter.grad is not None and parameter.grad.abs().sum() > 0 for parameter in encoder.model.parameters())

    # An optimiser step changes the weights: the next embeddings are the new model's, not the cached ones.
    torch.optim.SGD(encoder.parameters(), lr=1.0).step()
    with torch.no_grad():
        after = encode(module, context, observation)
        fresh = encoder.head(encoder.encode(observation[keys.INPUT_IDS], observation[keys.ATTENTION_MASK]))
    assert encoder.cache_info().misses == 4
    assert not torch.allclose(after, first)
    torch.testing.assert_close(after, fresh, rtol=1e-5, atol=1e-6)


def test_a_trained_encoder_notices_weights_written_without_its_version_counters(make_context, tokenizer):
    # An actor process's policy copy receives the learner's weights in shared memory or through `.data`,
    # which leaves the tensors' version counters as they were.
    context = make_context("text")
    module = TransformerEncoderConfig(key="obs", hidden=16, layers=1, heads=2, embedding_dim=8).build(context)
    encoder = module.module
    observation = text_batch(tokenizer, [MISSIONS[0], MISSIONS[1]])
    with torch.no_grad():
        first = encode(module, context, observation)
        for parameter in encoder.model.parameters():
            parameter.data.add_(0.1 * torch.randn_like(parameter))
        after = encode(module, context, observation)
        fresh = encoder.head(encoder.encode(observation[keys.INPUT_IDS], observation[keys.ATTENTION_MASK]))
    assert encoder.cache_info().misses == 4
    assert not torch.allclose(after, first)
    torch.testing.assert_close(after, fresh, rtol=1e-5, atol=1e-6)
