"""MAPPO on mpe2's simple_spread written directly on TorchRL, with the settings of TorchRL's multi-agent PPO tutorial.

The tutorial's structure and hyper-parameters (6,000-frame batches, 30 epochs of 400-frame minibatches, Adam 3e-4,
gradient norm 1.0, clip 0.2, GAE(0.99, 0.9), entropy 1e-4, ``MultiAgentMLP`` of two 256-wide tanh layers, shared
parameters, a centralised critic), on ``num_envs`` copies of a ``PettingZooWrapper`` in a ``SerialEnv`` (discrete
actions, one group ``agent`` of ``agents`` agents). The peer of ``benchmarks/simple_spread.py``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, ReplayBuffer, SamplerWithoutReplacement
from torchrl.envs import PettingZooWrapper, RewardSum, SerialEnv, TransformedEnv
from torchrl.modules import MultiAgentMLP, ProbabilisticActor
from torchrl.objectives import ClipPPOLoss, ValueEstimators

GROUP = "agent"


@dataclass(frozen=True)
class MappoSettings:
    """The tutorial's settings, on simple_spread (3 agents, 25 steps)."""

    agents: int = 3
    max_cycles: int = 25
    num_envs: int = 8
    frames: int = 198_000
    frames_per_batch: int = 6_000
    epochs: int = 30
    minibatch_size: int = 400
    lr: float = 3.0e-4
    max_grad_norm: float = 1.0
    clip_epsilon: float = 0.2
    gamma: float = 0.99
    gae_lambda: float = 0.9
    entropy_coef: float = 1.0e-4
    hidden: int = 256
    depth: int = 2
    seed: int = 0

    def as_dict(self) -> dict:
        """The settings as JSON-friendly values."""
        return asdict(self)


def make_env(settings: MappoSettings) -> TransformedEnv:
    """``num_envs`` simple_spread copies stepped in turn, summing each agent's episode reward."""
    import mpe2.simple_spread_v3 as simple_spread

    def one() -> PettingZooWrapper:
        env = simple_spread.parallel_env(N=settings.agents, max_cycles=settings.max_cycles, continuous_actions=False)
        return PettingZooWrapper(env=env, categorical_actions=True, use_mask=False)

    env = SerialEnv(settings.num_envs, one)
    reward = (GROUP, "reward")
    return TransformedEnv(env, RewardSum(in_keys=[reward], out_keys=[(GROUP, "episode_reward")]))


def make_modules(settings: MappoSettings, env: TransformedEnv) -> tuple[ProbabilisticActor, TensorDictModule]:
    """A shared decentralised actor and a shared centralised critic, as the tutorial builds them."""
    observations = env.observation_spec[GROUP, "observation"].shape[-1]
    actions = env.full_action_spec[GROUP, "action"].space.n
    network = MultiAgentMLP(
        n_agent_inputs=observations, n_agent_outputs=actions, n_agents=settings.agents, centralised=False,
        share_params=True, depth=settings.depth, num_cells=settings.hidden, activation_class=nn.Tanh,
    )
    logits = TensorDictModule(network, in_keys=[(GROUP, "observation")], out_keys=[(GROUP, "logits")])
    actor = ProbabilisticActor(
        logits, in_keys={"logits": (GROUP, "logits")}, out_keys=[(GROUP, "action")],
        spec=env.full_action_spec[GROUP, "action"], distribution_class=torch.distributions.Categorical,
        return_log_prob=True, log_prob_key=(GROUP, "sample_log_prob"),
    )
    critic = MultiAgentMLP(
        n_agent_inputs=observations, n_agent_outputs=1, n_agents=settings.agents, centralised=True,
        share_params=True, depth=settings.depth, num_cells=settings.hidden, activation_class=nn.Tanh,
    )
    return actor, TensorDictModule(critic, in_keys=[(GROUP, "observation")], out_keys=[(GROUP, "state_value")])


def train(settings: MappoSettings) -> dict:
    """Train for ``settings.frames`` env frames; frames per second and the mean per-agent episode return per batch."""
    torch.manual_seed(settings.seed)
    env = make_env(settings)
    env.set_seed(settings.seed)
    actor, critic = make_modules(settings, env)
    loss = ClipPPOLoss(actor_network=actor, critic_network=critic, clip_epsilon=settings.clip_epsilon,
                       entropy_coeff=settings.entropy_coef, normalize_advantage=False)
    loss.set_keys(reward=(GROUP, "reward"), action=(GROUP, "action"), sample_log_prob=(GROUP, "sample_log_prob"),
                  value=(GROUP, "state_value"), done=(GROUP, "done"), terminated=(GROUP, "terminated"))
    loss.make_value_estimator(ValueEstimators.GAE, gamma=settings.gamma, lmbda=settings.gae_lambda)
    optimizer = torch.optim.Adam(loss.parameters(), lr=settings.lr)
    collector = Collector(env, actor, frames_per_batch=settings.frames_per_batch, total_frames=settings.frames)
    buffer = ReplayBuffer(storage=LazyTensorStorage(settings.frames_per_batch), sampler=SamplerWithoutReplacement(),
                          batch_size=settings.minibatch_size)
    torch.set_num_threads(1)
    curve: list[tuple[int, float]] = []
    frames = 0
    start = time.perf_counter()
    for batch in collector:
        frames += batch.numel()
        # The tutorial expands the team's done flags to every agent so GAE reads them per agent.
        for key in ("done", "terminated"):
            batch.set(("next", GROUP, key), batch.get(("next", key)).unsqueeze(-1).expand(batch.get_item_shape(("next", GROUP, "reward"))))
        with torch.no_grad():
            loss.value_estimator(batch, params=loss.critic_network_params, target_params=loss.target_critic_network_params)
        buffer.extend(batch.reshape(-1))
        for _ in range(settings.epochs):
            for _ in range(settings.frames_per_batch // settings.minibatch_size):
                terms = loss(buffer.sample())
                total = terms["loss_objective"] + terms["loss_critic"] + terms["loss_entropy"]
                optimizer.zero_grad()
                total.backward()
                torch.nn.utils.clip_grad_norm_(loss.parameters(), settings.max_grad_norm)
                optimizer.step()
        collector.update_policy_weights_()
        ended = batch.get(("next", "done")).squeeze(-1)
        if ended.any():
            curve.append((frames, batch.get(("next", GROUP, "episode_reward"))[ended].mean().item()))
    wall = time.perf_counter() - start
    collector.shutdown()
    return {"frames": frames, "wall_s": wall, "fps": frames / wall, "curve": curve,
            "final_return": curve[-1][1] if curve else float("nan")}
