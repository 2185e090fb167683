"""PPO on a Gymnasium env written directly on TorchRL (its PPO tutorial's structure), for the speed benchmark.

A ``GymWrapper`` around Gymnasium's synchronous vector env (``num_envs`` copies in one step, in
this process, as himo's adapter steps them) with ``StepCounter`` and ``RewardSum``,
a ``Collector``, ``GAE``, ``ClipPPOLoss`` and minibatches drawn without replacement from a
``ReplayBuffer``; Adam with gradient-norm clipping.
"""

from __future__ import annotations

import math
import time

import gymnasium
import torch
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, ReplayBuffer, SamplerWithoutReplacement
from torchrl.envs import Compose, GymWrapper, RewardSum, StepCounter, TransformedEnv
from torchrl.modules import MLP, ActorValueOperator, ProbabilisticActor, ValueOperator
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

from peers.settings import PPOSettings


def make_env(settings: PPOSettings) -> TransformedEnv:
    """``num_envs`` copies of the Gymnasium env stepped together, counting steps and summing rewards."""
    vector = gymnasium.make_vec(settings.env_id, num_envs=settings.num_envs, vectorization_mode="sync",
                                vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.DISABLED})
    env = GymWrapper(vector, categorical_action_encoding=True)
    return TransformedEnv(env, Compose(StepCounter(), RewardSum()))


def orthogonal(network: nn.Module, last_gain: float) -> nn.Module:
    """Orthogonal weights (gain sqrt 2, ``last_gain`` on the last layer) and zero biases, as the other contenders."""
    linears = [layer for layer in network.modules() if isinstance(layer, nn.Linear)]
    for index, linear in enumerate(linears):
        nn.init.orthogonal_(linear.weight, gain=last_gain if index == len(linears) - 1 else math.sqrt(2))
        nn.init.zeros_(linear.bias)
    return network


def make_modules(settings: PPOSettings, env: TransformedEnv) -> tuple[ProbabilisticActor, ValueOperator]:
    """An ``ActorValueOperator``: a shared encoder, the actor's categorical head and the critic's value head."""
    observations = env.observation_spec["observation"].shape[-1]
    actions = env.action_spec.space.n
    *hidden, embedding = settings.encoder_sizes
    heads = list(settings.head_sizes)
    encoder = TensorDictModule(
        nn.Sequential(orthogonal(MLP(observations, embedding, num_cells=hidden, activation_class=nn.Tanh), math.sqrt(2)),
                      nn.Tanh()),
        in_keys=["observation"], out_keys=["embedding"],
    )
    actor_head = TensorDictModule(orthogonal(MLP(embedding, actions, num_cells=heads, activation_class=nn.Tanh), 0.01),
                                  in_keys=["embedding"], out_keys=["logits"])
    actor = ProbabilisticActor(actor_head, in_keys=["logits"], spec=env.action_spec,
                               distribution_class=torch.distributions.Categorical, return_log_prob=True)
    critic = ValueOperator(orthogonal(MLP(embedding, 1, num_cells=heads, activation_class=nn.Tanh), 1.0), in_keys=["embedding"])
    both = ActorValueOperator(encoder, actor, critic)
    return both.get_policy_operator(), both.get_value_operator()


def train(settings: PPOSettings) -> dict:
    """Train for ``settings.frames``; frames per second of the loop and the last episodes' mean return."""
    torch.manual_seed(settings.seed)
    env = make_env(settings)
    env.set_seed(settings.seed)
    actor, critic = make_modules(settings, env)
    advantage = GAE(gamma=settings.gamma, lmbda=settings.gae_lambda, value_network=critic, average_gae=False)
    loss = ClipPPOLoss(
        actor, critic, clip_epsilon=settings.clip_epsilon, entropy_coeff=settings.entropy_coef,
        critic_coeff=settings.value_coef, loss_critic_type="l2", normalize_advantage=True,
    )
    optimizer = torch.optim.Adam(loss.parameters(), lr=settings.lr)
    collector = Collector(env, actor, frames_per_batch=settings.frames_per_batch, total_frames=settings.frames,
                          auto_register_policy_transforms=False)
    buffer = ReplayBuffer(storage=LazyTensorStorage(settings.frames_per_batch),
                          sampler=SamplerWithoutReplacement(), batch_size=settings.minibatch_size)
    torch.set_num_threads(1)  # batched envs restore the import-time thread count when built
    returns: list[float] = []
    start = time.perf_counter()
    for batch in collector:
        ended = batch["next", "done"].squeeze(-1)
        returns.extend(batch["next", "episode_reward"][ended].flatten().tolist())
        for _ in range(settings.epochs):
            with torch.no_grad():
                advantage(batch)
            buffer.extend(batch.reshape(-1))
            for _ in range(settings.frames_per_batch // settings.minibatch_size):
                terms = loss(buffer.sample())
                total = terms["loss_objective"] + terms["loss_critic"] + terms["loss_entropy"]
                optimizer.zero_grad()
                total.backward()
                torch.nn.utils.clip_grad_norm_(loss.parameters(), settings.max_grad_norm)
                optimizer.step()
        collector.update_policy_weights_()
    wall = time.perf_counter() - start
    collector.shutdown()
    last = returns[-20:]
    return {"frames": settings.frames, "wall_s": wall, "fps": settings.frames / wall,
            "final_return": sum(last) / max(len(last), 1), "parameters": sum(p.numel() for p in loss.parameters())}
