"""PPO from the Stable-Baselines3 package (the ``bench`` extra) with the speed benchmark's settings.

Its own vectorised env (``make_vec_env``, ``num_envs`` copies stepped in one process), its own
rollout buffer and update; the policy is given the same shared encoder and head sizes as the
other contenders.
"""

from __future__ import annotations

import time

import gymnasium
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from peers.settings import PPOSettings


class SharedEncoder(BaseFeaturesExtractor):
    """A tanh MLP read by both the actor's and the critic's heads."""

    def __init__(self, observation_space: gymnasium.spaces.Box, sizes: tuple[int, ...]) -> None:
        super().__init__(observation_space, features_dim=sizes[-1])
        layers: list[nn.Module] = []
        width = int(observation_space.shape[0])
        for size in sizes:
            layers += [nn.Linear(width, size), nn.Tanh()]
            width = size
        self.network = nn.Sequential(*layers)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """Embed a batch of observations."""
        return self.network(observations)


def train(settings: PPOSettings) -> dict:
    """Train for ``settings.frames``; frames per second of ``learn`` and the last episodes' mean return."""
    env = make_vec_env(settings.env_id, n_envs=settings.num_envs, seed=settings.seed)
    heads = list(settings.head_sizes)
    model = PPO(
        "MlpPolicy", env, learning_rate=settings.lr, n_steps=settings.steps_per_env, batch_size=settings.minibatch_size,
        n_epochs=settings.epochs, gamma=settings.gamma, gae_lambda=settings.gae_lambda, clip_range=settings.clip_epsilon,
        ent_coef=settings.entropy_coef, vf_coef=settings.value_coef, max_grad_norm=settings.max_grad_norm,
        seed=settings.seed, device="cpu", verbose=0,
        policy_kwargs={"features_extractor_class": SharedEncoder,
                       "features_extractor_kwargs": {"sizes": settings.encoder_sizes},
                       "share_features_extractor": True, "net_arch": {"pi": heads, "vf": heads},
                       "activation_fn": nn.Tanh, "ortho_init": True},
    )
    torch.set_num_threads(1)
    start = time.perf_counter()
    model.learn(total_timesteps=settings.frames)
    wall = time.perf_counter() - start
    episodes = [info["r"] for info in model.ep_info_buffer][-20:]
    return {"frames": model.num_timesteps, "wall_s": wall, "fps": model.num_timesteps / wall,
            "final_return": sum(episodes) / max(len(episodes), 1),
            "parameters": sum(parameter.numel() for parameter in model.policy.parameters())}
