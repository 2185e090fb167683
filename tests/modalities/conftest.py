"""Fake observation specs, contexts and observations for the encoder tests (tiny shapes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torchrl.data import Bounded, Categorical, Composite, TensorSpec, Unbounded
from transformers import PreTrainedTokenizerFast

from himo.envs import keys
from himo.envs.text import build_word_tokenizer
from himo.modalities.base import EncoderContext

GROUP = "agents"
WORDS = "go to pick up open the a red green blue yellow ball key box door".split()
EVENT_SHAPES = {"vector": (5,), "image": (3, 7, 7), "audio": (2, 800), "text": (8,)}


def fake_spec(modality: str, vocabulary: int, leading: tuple[int, ...] = ()) -> TensorSpec:
    """A small observation spec of ``modality`` with optional leading env/agent dims."""
    shape = (*leading, *EVENT_SHAPES[modality])
    if modality == "vector":
        return Unbounded(shape=shape)
    if modality == "image":
        return Bounded(0, 255, shape=shape, dtype=torch.uint8)
    if modality == "audio":
        return Unbounded(shape=shape)
    return Composite(
        {
            keys.INPUT_IDS: Categorical(vocabulary, shape=shape, dtype=torch.int64),
            keys.ATTENTION_MASK: Categorical(2, shape=shape, dtype=torch.bool),
        },
        shape=leading,
    )


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    """The env's word tokenizer."""
    return build_word_tokenizer(WORDS)


@pytest.fixture
def make_context(tokenizer: PreTrainedTokenizerFast) -> Callable[..., EncoderContext]:
    """``make_context(modality, leading=())``: a context reading ``(GROUP, "observation", "obs")``."""

    def make(modality: str, leading: tuple[int, ...] = ()) -> EncoderContext:
        return EncoderContext(
            in_key=keys.observation(GROUP, "obs"),
            out_key=keys.embedding(GROUP, modality),
            spec=fake_spec(modality, len(tokenizer), leading),
            tokenizer=tokenizer,
        )

    return make


@pytest.fixture
def random_observation(tokenizer: PreTrainedTokenizerFast) -> Callable[[str, tuple[int, ...]], Any]:
    """``random_observation(modality, batch)``: a tensor (a dict of ids + mask for text)."""

    def make(modality: str, batch: tuple[int, ...]) -> Any:
        event = EVENT_SHAPES[modality]
        if modality == "text":
            lengths = torch.randint(1, event[0] + 1, batch)
            mask = torch.arange(event[0]) < lengths.unsqueeze(-1)
            ids = torch.randint(2, len(tokenizer), (*batch, *event)).masked_fill(~mask, 0)
            return {keys.INPUT_IDS: ids, keys.ATTENTION_MASK: mask}
        if modality == "image":  # values valid for every image encoder: pixels and the grid's cell codes (< 16)
            return torch.randint(0, 16, (*batch, *event), dtype=torch.uint8)
        return torch.randn(*batch, *event)

    return make
