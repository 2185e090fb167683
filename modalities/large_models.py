"""Large transformer encoders on a budget: LoRA adapters, activation checkpointing and bf16 autocast.

Three options of the transformer-based encoders (``transformer`` for text, ``vit``, ``ast``), each a scenario field:

* ``adapter: {kind: lora, rank, alpha, dropout, target_modules}``: the encoder's transformer is wrapped by the
  ``peft`` library's LoRA: its own weights are frozen and low-rank updates of the attention projections train with
  the encoder's head. The optimiser only sees trainable parameters (``himo.agents.optim.select_parameters``), so it
  holds the adapter and the head. Where the transformer is pretrained (``pretrained:``), checkpoints store the
  adapter alone: the base is rebuilt from its source when a run is evaluated or resumed. A transformer built from a
  config has no other source than the checkpoint, which then keeps it.
* ``checkpointing: true``: the transformer recomputes its layers' activations in the backward pass instead of
  keeping them (``transformers``' activation checkpointing, non-reentrant, so it also works when only an adapter
  trains): less memory for the same gradients, at the cost of a second forward.
* ``train.precision: bf16`` (every encoder, applied in :mod:`himo.modalities.build`): the encoder's forward runs
  under ``torch.autocast`` in bfloat16 and its embedding is handed on in float32, so the heads, the losses and the
  optimiser state stay in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from himo.modalities.base import EncoderConfig

LORA_MARK = "lora_"
"""Part of the name of every parameter a LoRA adapter adds (``lora_A``, ``lora_B``)."""
DEFAULT_TARGETS = (("query", "value"), ("q_proj", "v_proj"))
"""The attention's query and value projections, which LoRA adapts by default, as models name them (BERT: query,
value; ViT and AST in this transformers version: q_proj, v_proj); the first pair the model has is taken."""


class AdapterConfig(BaseModel):
    """A LoRA adapter on a transformer encoder (``modalities.<name>.adapter``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["lora"] = Field("lora", description="Adapter kind: lora (low-rank updates, through peft).")
    rank: int = Field(8, ge=1, le=1024, description="Rank of each low-rank update.")
    alpha: float = Field(16.0, gt=0, description="Scale of the updates: they are multiplied by alpha / rank.")
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="Dropout on the adapter's input; above 0 acting and learning see different "
        "networks, which skews PPO's ratios."
    )
    target_modules: tuple[str, ...] | None = Field(
        None,
        min_length=1,
        description="Names of the linear layers to adapt; null: the attention's query and value projections (query "
        "and value, or q_proj and v_proj, as the model names them).",
    )


class LargeModelFields(EncoderConfig):
    """The options of encoders built on a ``transformers`` model; ``build`` calls :meth:`prepare` on its network."""

    adapter: AdapterConfig | None = Field(
        None, description="A LoRA adapter: only it and the head train (section below); null: the model trains whole."
    )
    checkpointing: bool = Field(
        False, description="Recompute the transformer's activations in the backward pass (less memory, same gradients)."
    )

    @model_validator(mode="after")
    def _adapter_trains(self) -> LargeModelFields:
        if self.adapter is not None and self.frozen:
            raise ValueError("an adapter trains while its base stays fixed: remove frozen: true (or the adapter)")
        return self

    def prepare(self, network: nn.Module, pretrained: bool) -> nn.Module:
        """Apply checkpointing and the adapter to ``network.model`` (the transformer), in place; return ``network``."""
        if self.checkpointing:
            network.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        if self.adapter is not None:
            network.model = add_lora(network.model, self.adapter)
            if pretrained:
                store_adapter_only(network)
        return network


def add_lora(model: nn.Module, adapter: AdapterConfig) -> nn.Module:
    """``model`` wrapped by a peft LoRA adapter: its weights frozen, the adapter's trainable."""
    from peft import LoraConfig, get_peft_model

    linear = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    if adapter.target_modules is None:
        targets = next((pair for pair in DEFAULT_TARGETS if set(pair) <= linear), None)
        if targets is None:
            raise ValueError(f"adapter: no query and value projections found; name target_modules among {sorted(linear)}")
    else:
        targets = adapter.target_modules
        missing = [target for target in targets if target not in linear]
        if missing:
            raise ValueError(f"adapter.target_modules: {missing} not in the model; its linear layers: {sorted(linear)}")
    config = LoraConfig(r=adapter.rank, lora_alpha=adapter.alpha, lora_dropout=adapter.dropout, target_modules=list(targets))
    return get_peft_model(model, config)


def _base_keys(state_keys: Sequence[str], prefix: str) -> list[str]:
    """The keys under ``prefix + "model."`` that belong to the frozen base, not to the adapter."""
    model_prefix = prefix + "model."
    return [key for key in state_keys if key.startswith(model_prefix) and LORA_MARK not in key]


def store_adapter_only(network: nn.Module) -> None:
    """Leave ``network.model``'s base weights out of ``network``'s state dict, and take them as they are on load.

    Saving drops them (a post-hook); loading fills the missing ones in with the module's own (a pre-hook), so a
    state dict without them loads strictly, and one with them (an older checkpoint) still loads them.
    """

    def drop_base(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
        for key in _base_keys(list(state_dict), prefix):
            del state_dict[key]

    def keep_base(
        module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any
    ) -> None:
        own = module.model.state_dict(prefix=prefix + "model.", keep_vars=True)
        for key in _base_keys(list(own), prefix):
            state_dict.setdefault(key, own[key].detach())

    network.register_state_dict_post_hook(drop_base)
    network.register_load_state_dict_pre_hook(keep_base)


PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}
"""``train.precision``: the dtype encoders autocast to (None: none)."""
