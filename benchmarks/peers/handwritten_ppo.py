"""PPO written out by hand on plain tensors: the limit row of the speed benchmark.

No framework between the loop and the env: Gymnasium's synchronous vector env (``num_envs`` copies stepped in this
process, as the other contenders step them, resetting itself where an episode ends), observations and actions as
plain tensors, a rollout kept in preallocated tensors, GAE over it, then ``epochs`` passes of shuffled minibatches
with the clipped objective. The network has the same shared encoder and head sizes, initialisation and
hyper-parameters as the other contenders (``peers.settings.PPOSettings``). Whatever any framework adds per step or
per update shows as the distance to this row.
"""

from __future__ import annotations

import math
import time

import gymnasium
import numpy
import torch
from torch import nn

from peers.settings import PPOSettings


def mlp(sizes: list[int], last_gain: float, last_tanh: bool = False) -> nn.Sequential:
    """A tanh MLP with orthogonal weights (gain sqrt 2, ``last_gain`` on the last layer) and zero biases."""
    layers: list[nn.Module] = []
    for index, (width, size) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = nn.Linear(width, size)
        last = index == len(sizes) - 2
        nn.init.orthogonal_(linear.weight, gain=last_gain if last else math.sqrt(2))
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if not last or last_tanh:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """A shared tanh encoder, then the actor's logits and the critic's value, each on its own MLP."""

    def __init__(self, observations: int, actions: int, settings: PPOSettings) -> None:
        super().__init__()
        *hidden, embedding = settings.encoder_sizes
        heads = list(settings.head_sizes)
        self.encoder = mlp([observations, *hidden, embedding], math.sqrt(2), last_tanh=True)
        self.actor = mlp([embedding, *heads, actions], 0.01)
        self.critic = mlp([embedding, *heads, 1], 1.0)

    def forward(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, value)`` of a batch of observations."""
        embedding = self.encoder(observation)
        return self.actor(embedding), self.critic(embedding).squeeze(-1)


def advantages(rewards: torch.Tensor, values: torch.Tensor, ends: torch.Tensor, last_value: torch.Tensor,
               settings: PPOSettings) -> torch.Tensor:
    """GAE over ``[steps, envs]`` tensors; ``ends`` marks steps after which the episode terminated or was cut."""
    result = torch.zeros_like(rewards)
    running = torch.zeros_like(last_value)
    for step in reversed(range(rewards.shape[0])):
        following = last_value if step == rewards.shape[0] - 1 else values[step + 1]
        going_on = 1.0 - ends[step]
        delta = rewards[step] + settings.gamma * following * going_on - values[step]
        running = delta + settings.gamma * settings.gae_lambda * going_on * running
        result[step] = running
    return result


def train(settings: PPOSettings) -> dict:
    """Train for ``settings.frames``; frames per second of the loop and the last episodes' mean return."""
    torch.manual_seed(settings.seed)
    envs = gymnasium.make_vec(settings.env_id, num_envs=settings.num_envs, vectorization_mode="sync",
                              vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP})
    model = ActorCritic(envs.single_observation_space.shape[0], int(envs.single_action_space.n), settings)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    steps, count = settings.steps_per_env, settings.num_envs
    observations = torch.zeros(steps, count, envs.single_observation_space.shape[0])
    actions = torch.zeros(steps, count, dtype=torch.long)
    log_probs, rewards, ends, values = (torch.zeros(steps, count) for _ in range(4))
    returns: list[float] = []
    running_return = numpy.zeros(count)
    torch.set_num_threads(1)
    start = time.perf_counter()
    observation = torch.as_tensor(envs.reset(seed=settings.seed)[0], dtype=torch.float32)
    for _ in range(settings.frames // settings.frames_per_batch):
        with torch.no_grad():
            for step in range(steps):
                logits, value = model(observation)
                distribution = torch.distributions.Categorical(logits=logits, validate_args=False)
                action = distribution.sample()
                observations[step], actions[step], values[step] = observation, action, value
                log_probs[step] = distribution.log_prob(action)
                # Same-step autoreset: the next observation of an ended episode is its successor's first.
                next_observation, reward, terminated, truncated, _ = envs.step(action.numpy())
                running_return += reward
                done = terminated | truncated
                returns.extend(running_return[done].tolist())
                running_return[done] = 0.0
                rewards[step] = torch.as_tensor(reward, dtype=torch.float32)
                # A cut episode is treated as ended, as the other contenders' defaults do for CartPole's time limit.
                ends[step] = torch.as_tensor(done, dtype=torch.float32)
                observation = torch.as_tensor(next_observation, dtype=torch.float32)
            last_value = model(observation)[1]
        advantage = advantages(rewards, values, ends, last_value, settings)
        targets = (advantage + values).flatten()
        flat = (observations.flatten(0, 1), actions.flatten(), log_probs.flatten(), advantage.flatten())
        for _ in range(settings.epochs):
            order = torch.randperm(settings.frames_per_batch)
            for begin in range(0, settings.frames_per_batch, settings.minibatch_size):
                rows = order[begin:begin + settings.minibatch_size]
                observation_rows, action_rows, old_log_probs, advantage_rows = (part[rows] for part in flat)
                advantage_rows = (advantage_rows - advantage_rows.mean()) / (advantage_rows.std() + 1e-8)
                logits, value = model(observation_rows)
                distribution = torch.distributions.Categorical(logits=logits, validate_args=False)
                ratio = (distribution.log_prob(action_rows) - old_log_probs).exp()
                clipped = ratio.clamp(1.0 - settings.clip_epsilon, 1.0 + settings.clip_epsilon)
                objective = -torch.min(ratio * advantage_rows, clipped * advantage_rows).mean()
                value_loss = (value - targets[rows]).pow(2).mean()
                loss = objective + settings.value_coef * value_loss - settings.entropy_coef * distribution.entropy().mean()
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
                optimizer.step()
    wall = time.perf_counter() - start
    envs.close()
    frames = settings.frames // settings.frames_per_batch * settings.frames_per_batch
    last = returns[-20:]
    return {"frames": frames, "wall_s": wall, "fps": frames / wall, "final_return": sum(last) / max(len(last), 1),
            "parameters": sum(parameter.numel() for parameter in model.parameters())}
