"""Build a scenario's encoder for one agent group of a built environment."""

from __future__ import annotations

from dataclasses import replace

from tensordict.nn import TensorDictModuleBase
from torchrl.envs import EnvBase

from himo.envs import keys
from himo.modalities.base import EncoderConfig, EncoderContext
from himo.modalities.keyed import KeyedModule
from himo.modalities.large_models import PRECISIONS


def encoder_context(env: EnvBase, group: str, observation_key: str, out_key: tuple[str, ...]) -> EncoderContext:
    """What an encoder of ``(group, "observation", observation_key)`` needs to know, read off ``env``."""
    in_key = keys.observation(group, observation_key)
    spec = env.full_observation_spec[in_key]
    tokenizers = getattr(env, "tokenizers", {}) or {}
    return EncoderContext(in_key=in_key, out_key=out_key, spec=spec, tokenizer=tokenizers.get(observation_key))


def build_encoder(
    config: EncoderConfig, env: EnvBase, group: str, modality: str, precision: str = "fp32", condition_size: int = 0
) -> TensorDictModuleBase:
    """The encoder of ``modality`` for ``group``: reads its observation, writes ``(group, "embedding", modality)``;
    with ``precision`` ``bf16`` its forward runs under autocast (``himo.modalities.large_models``). An encoder
    conditioned on another modality also reads that modality's embedding, of size ``condition_size``."""
    context = encoder_context(env, group, config.key, keys.embedding(group, modality))
    if config.conditioned_on is not None:
        context = replace(
            context, condition_key=keys.embedding(group, config.conditioned_on), condition_size=condition_size
        )
    encoder = config.build(context)
    dtype = PRECISIONS[precision]
    if dtype is not None:
        if not isinstance(encoder, KeyedModule):
            raise ValueError(f"encoder {config.encoder!r} cannot run in {precision}")
        encoder.autocast_dtype = dtype
    return encoder
