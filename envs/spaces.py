"""Gymnasium observation spaces as himo observation keys, shared by the Gymnasium and PettingZoo adapters.

One agent's observation space becomes one entry per modality under ``(group, "observation")``:

- a ``Dict`` space gives one entry per key; any other space gives the single entry ``"state"``;
- a ``Dict`` nested in it gives nested entries, ``(group, "observation", name, sub, ...)``, each leaf
  converted by the rules below (e.g. a pre-tokenized text ``Dict(input_ids, attention_mask)``);
- an image-like ``Box`` (``uint8``, shape ``(H, W, C)`` with ``C`` in 1, 3, 4) becomes channels-first
  ``(C, H, W)``, the layout convolutional encoders expect;
- a text space (``gymnasium.spaces.Text``, MiniGrid's ``MissionSpace``) becomes
  ``(name, "input_ids")`` int64 and ``(name, "attention_mask")`` bool of length ``text_length``,
  tokenized word by word (``himo.envs.text``) over a locally built word list;
- a boolean ``Box`` becomes a boolean ``Categorical`` (as masks are declared elsewhere);
- everything else goes through TorchRL's own gymnasium-space conversion (``Discrete`` as integers).

Text vocabularies and tokenizers are keyed by the text space's own name (its innermost key).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
import torch
from tensordict import TensorDict
from torchrl.data import Bounded, Categorical, Composite, TensorSpec
from torchrl.envs.libs.gym import _gym_to_torchrl_spec_transform, set_gym_backend
from transformers import PreTrainedTokenizerBase

from himo.envs import keys
from himo.envs.text import encode_texts, text_tokenizer, unknown_words
from himo.envs.vocabularies import MINIGRID_WORDS

STATE = "state"
IMAGE_CHANNELS = (1, 3, 4)
# Distinct texts remembered per observation before the cache is emptied (missions repeat a lot).
TEXT_CACHE_SIZE = 4096


SUPPORTED_SPACES = (
    gymnasium.spaces.Box, gymnasium.spaces.Discrete, gymnasium.spaces.MultiDiscrete, gymnasium.spaces.MultiBinary
)
"""The observation spaces himo maps to tensors, beside text and ``Dict`` (which nests them)."""


def is_mission_space(space: gymnasium.Space) -> bool:
    """Whether ``space`` is MiniGrid's ``MissionSpace`` (or BabyAI's subclass), without importing minigrid."""
    return any(cls.__name__ == "MissionSpace" for cls in type(space).__mro__)


def is_text_space(space: gymnasium.Space) -> bool:
    """Whether ``space`` holds strings (gymnasium ``Text`` or MiniGrid's ``MissionSpace``)."""
    return isinstance(space, gymnasium.spaces.Text) or is_mission_space(space)


def is_image_space(space: gymnasium.Space) -> bool:
    """Whether ``space`` is an ``(H, W, C)`` uint8 image that himo stores channels-first."""
    return (
        isinstance(space, gymnasium.spaces.Box)
        and space.dtype == np.uint8
        and len(space.shape) == 3
        and space.shape[-1] in IMAGE_CHANNELS
    )


@dataclass
class _Entry:
    key: tuple[str, ...]  # path under the agent's observation: ("view",) or ("mission", "input_ids")
    kind: str  # "array", "image" or "text"
    spec: TensorSpec
    tokenizer: PreTrainedTokenizerBase | None = None

    @property
    def name(self) -> str:
        return self.key[-1]


def _lookup(observation: Mapping[str, Any], key: Sequence[str]) -> Any:
    for part in key:
        observation = observation[part]
    return observation


class ObservationConverter:
    """Converts batches of one agent's gymnasium observations into himo's observation entries.

    Args:
        space: the observation space of one agent (a ``Dict``, possibly nested, or a single space).
        text_length: number of tokens every text observation is padded or truncated to.
        vocabularies: per text observation name, its words, a word-list file or a tokenizer folder
            (``himo.envs.text.text_tokenizer``); MiniGrid missions default to
            ``himo.envs.vocabularies.MINIGRID_WORDS``.
        exclude: top-level entries of a ``Dict`` space that are not observations (e.g. ``"action_mask"``).
        device: device of the specs and tensors.
    """

    def __init__(
        self,
        space: gymnasium.Space,
        *,
        text_length: int = 64,
        vocabularies: Mapping[str, Sequence[str] | str] | None = None,
        exclude: Sequence[str] = (),
        device: torch.device | str = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.text_length = text_length
        self.is_dict = isinstance(space, gymnasium.spaces.Dict)
        top = space if self.is_dict else gymnasium.spaces.Dict({STATE: space})
        self.entries: list[_Entry] = []
        self.untokenized: list[str] = []
        """Text observations left out for want of a vocabulary: nothing can read them (see ``_entry``)."""
        self._add_entries((), top, dict(vocabularies or {}), exclude)
        self._text_cache: dict[tuple[str, ...], dict[str, tuple[torch.Tensor, torch.Tensor]]] = {
            entry.key: {} for entry in self.entries if entry.kind == "text"
        }

    def _add_entries(
        self, prefix: tuple[str, ...], space: gymnasium.spaces.Dict, vocabularies: Mapping[str, Sequence[str]],
        exclude: Sequence[str],
    ) -> None:
        for name, subspace in space.spaces.items():
            if name in exclude:
                continue
            key = (*prefix, name)
            if isinstance(subspace, gymnasium.spaces.Dict):
                self._add_entries(key, subspace, vocabularies, ())
            elif is_text_space(subspace) and vocabularies.get(name) is None and not is_mission_space(subspace):
                # Without its words it cannot be tokenized; left out, it costs nothing unless a scenario reads it,
                # and then the scenario's check names the missing vocabulary (himo.scenarios.build).
                self.untokenized.append(name)
            else:
                self.entries.append(self._entry(key, subspace, vocabularies.get(name)))

    def _entry(self, key: tuple[str, ...], space: gymnasium.Space, words: Sequence[str] | str | None) -> _Entry:
        name = key[-1]
        if not (is_text_space(space) or isinstance(space, SUPPORTED_SPACES)):
            raise ValueError(
                f"observation {'.'.join(key)!r}: a {type(space).__name__} space is not supported; himo maps "
                f"{', '.join(kind.__name__ for kind in SUPPORTED_SPACES)} (uint8 (height, width, channels) boxes as "
                "images), Text and nested Dict spaces"
            )
        if is_text_space(space):
            if words is None and is_mission_space(space):
                words = MINIGRID_WORDS
            tokenizer = text_tokenizer(words, name)
            spec = Composite(
                {
                    keys.INPUT_IDS: Bounded(
                        0, len(tokenizer) - 1, shape=(self.text_length,), dtype=torch.int64, device=self.device
                    ),
                    keys.ATTENTION_MASK: Categorical(2, shape=(self.text_length,), dtype=torch.bool, device=self.device),
                },
            )
            return _Entry(key, "text", spec, tokenizer)
        if is_image_space(space):
            height, width, channels = space.shape
            low = torch.as_tensor(np.moveaxis(space.low, -1, 0))
            high = torch.as_tensor(np.moveaxis(space.high, -1, 0))
            spec = Bounded(low, high, shape=(channels, height, width), dtype=torch.uint8, device=self.device)
            return _Entry(key, "image", spec)
        if isinstance(space, gymnasium.spaces.Box) and space.dtype == np.bool_:
            return _Entry(key, "array", Categorical(2, shape=space.shape, dtype=torch.bool, device=self.device))
        with set_gym_backend("gymnasium"):
            spec = _gym_to_torchrl_spec_transform(
                space, device=self.device, categorical_action_encoding=True, remap_state_to_observation=False
            )
        return _Entry(key, "array", spec)

    @property
    def spec(self) -> Composite:
        """The observation entries of one agent, unbatched: ``Composite(name -> spec)`` (nested for nested ``Dict``)."""
        spec = Composite(device=self.device)
        for entry in self.entries:
            spec[entry.key] = entry.spec.clone()
        return spec

    @property
    def tokenizers(self) -> dict[str, PreTrainedTokenizerBase]:
        """The tokenizer of each text observation, keyed by the text's own name."""
        return {entry.name: entry.tokenizer for entry in self.entries if entry.tokenizer is not None}

    def collate(self, items: Sequence[Any]) -> Any:
        """The batched form ``convert`` takes, from a flat sequence of single observations (e.g. one per agent)."""
        if not self.is_dict:
            return list(items)
        batched: dict[str, Any] = {}
        for entry in self.entries:
            node = batched
            for part in entry.key[:-1]:
                node = node.setdefault(part, {})
            node[entry.name] = [_lookup(item, entry.key) for item in items]
        return batched

    def convert(self, observations: Mapping[str, Any] | Any, batch_shape: Sequence[int]) -> TensorDict:
        """Observation entries for a batch of raw observations.

        Args:
            observations: a mapping ``name -> values`` (nested like the space; for a non-``Dict``
                space, the values themselves) whose leading dimensions are ``batch_shape``, or
                sequences of ``prod(batch_shape)`` items (``collate``); text values are any nested
                sequence of strings with ``prod(batch_shape)`` items.
            batch_shape: the leading dimensions, e.g. ``[num_envs, n_agents]``.
        """
        if not self.is_dict:
            observations = {STATE: observations}
        batch_shape = tuple(batch_shape)
        converted = TensorDict(batch_size=batch_shape, device=self.device)
        for entry in self.entries:
            value = _lookup(observations, entry.key)
            if entry.kind == "text":
                input_ids, attention_mask = self._tokenize(entry, value)
                converted.set((*entry.key, keys.INPUT_IDS), input_ids.reshape(*batch_shape, self.text_length))
                converted.set((*entry.key, keys.ATTENTION_MASK), attention_mask.reshape(*batch_shape, self.text_length))
                continue
            # torch.tensor copies: vector envs reuse their observation buffers between steps.
            tensor = torch.tensor(np.asarray(value), device=self.device)
            if entry.kind == "image":
                height, width = entry.spec.shape[-2:]
                tensor = tensor.reshape(*batch_shape, height, width, -1).movedim(-1, -3).contiguous()
            else:
                tensor = tensor.to(entry.spec.dtype).reshape(*batch_shape, *entry.spec.shape)
            converted.set(entry.key, tensor)
        return converted

    def _tokenize(self, entry: _Entry, value: Any) -> tuple[torch.Tensor, torch.Tensor]:
        texts = [str(text) for text in np.asarray(value, dtype=object).reshape(-1)]
        cache = self._text_cache[entry.key]
        missing = list(dict.fromkeys(text for text in texts if text not in cache))
        if missing:
            for text in missing:
                # An unknown word would become the unknown token silently: the policy could not tell it from any other.
                unknown = unknown_words(entry.tokenizer, text)
                if unknown:
                    raise ValueError(
                        f"text observation {entry.name!r}: {unknown} in {text!r} not in its vocabulary; add them to "
                        f"env.kwargs.vocabularies.{entry.name}"
                    )
            if len(cache) + len(missing) > TEXT_CACHE_SIZE:
                cache.clear()
            input_ids, attention_mask = encode_texts(entry.tokenizer, missing, self.text_length)
            for text, ids, mask in zip(missing, input_ids, attention_mask):
                cache[text] = (ids.to(self.device), mask.to(self.device))
        rows = [cache[text] for text in texts]
        return torch.stack([ids for ids, _ in rows]), torch.stack([mask for _, mask in rows])


def done_specs(batch_shape: Sequence[int], device: torch.device | str) -> dict[str, TensorSpec]:
    """``done``, ``terminated`` and ``truncated`` boolean specs of shape ``[*batch_shape, 1]``."""
    return {
        name: Categorical(2, shape=(*batch_shape, 1), dtype=torch.bool, device=device)
        for name in (keys.DONE, keys.TERMINATED, keys.TRUNCATED)
    }


def reset_mask(tensordict: TensorDict | None, groups: Sequence[str], num_envs: int) -> np.ndarray:
    """Which of the ``num_envs`` copies a (possibly partial) reset asks for, from the ``_reset`` entries.

    TorchRL writes ``"_reset"`` at the root and ``(group, "_reset")`` per agent; a copy is reset if
    any of them is set. No tensordict or no ``_reset`` entry means every copy.
    """
    if tensordict is None:
        return np.ones(num_envs, dtype=bool)
    mask = None
    for key in ["_reset", *[(group, "_reset") for group in groups]]:
        value = tensordict.get(key, None)
        if value is None:
            continue
        value = value.reshape(num_envs, -1).any(-1)
        mask = value if mask is None else mask | value
    if mask is None:
        return np.ones(num_envs, dtype=bool)
    return mask.cpu().numpy()
