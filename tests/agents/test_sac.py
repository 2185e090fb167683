"""Soft actor-critic's parts: the squashed Gaussian's density, the critic target, the temperature, Polyak
averaging, the replay buffer in checkpoints, and a level that learns a bandit through the replay interface."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn
from torchrl.modules import TanhNormal

from himo.agents.base import HeadShape, LevelModel, ReplayProblem, SoftHeadOutputs
from himo.agents.sac import SAC, TwinQ, automatic_target_entropy, transitions
from himo.agents.soft_policies import CategoricalPolicy, SquashedGaussianPolicy


@dataclass(frozen=True)
class Settings:
    optimizer: str = "adam"
    lr: float = 3e-3
    lr_schedule: str = "constant"
    lr_final: float = 0.0
    max_grad_norm: float | None = None
    frozen: bool = False
    buffer_size: int = 1000
    minibatch_size: int = 64
    gradient_steps: int = 8
    learning_starts: int = 64
    tau: float = 0.05
    initial_temperature: float = 1.0
    target_entropy: float | None = None
    target_entropy_weight: float = 0.5
    hidden_sizes: tuple[int, ...] | None = (32,)


def test_the_squashed_gaussian_density_is_the_change_of_variables_and_stays_finite_when_saturated() -> None:
    torch.manual_seed(0)
    loc, scale = torch.randn(1000, 2) * 0.5, torch.rand(1000, 2) + 0.2
    low, high = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0])
    action, log_prob = SquashedGaussianPolicy(loc, scale, low, high).sample()
    assert ((action >= low) & (action <= high)).all()
    reference = TanhNormal(loc, scale, low=low, high=high).log_prob(action)
    torch.testing.assert_close(log_prob, reference, rtol=1e-3, atol=1e-3)

    saturated = SquashedGaussianPolicy(torch.full((4, 1), 30.0), torch.full((4, 1), 0.01), low[:1], high[:1])
    action, log_prob = saturated.sample()
    assert torch.isfinite(log_prob).all() and torch.allclose(action, high[:1])


def test_twin_q_functions_are_independent_and_shaped_per_choice_or_per_action() -> None:
    discrete = TwinQ(HeadShape(features=5, choices=3, allowed=3, continuous=False, hidden_sizes=(8,)), (8,))
    values = discrete(torch.randn(7, 2, 5))
    assert values.shape == (2, 7, 2, 3) and not torch.allclose(values[0], values[1])
    continuous = TwinQ(HeadShape(features=5, choices=2, allowed=2, continuous=True, hidden_sizes=(8,)), (8,))
    assert continuous(torch.randn(7, 5), torch.randn(7, 2)).shape == (2, 7)


def test_the_automatic_target_entropy() -> None:
    assert automatic_target_entropy(HeadShape(4, 3, 3, True, ()), 0.5) == -3.0
    assert math.isclose(automatic_target_entropy(HeadShape(4, 5, 4, False, ()), 0.5), 0.5 * math.log(4))


class Bandit(nn.Module):
    """A two-state contextual bandit: in state k the action k pays 1, every other action 0; episodes last one step."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(2, 8)
        self.actor = nn.Linear(8, 3)
        self.value = nn.Linear(8, 1)

    def model(self) -> LevelModel:
        shape = HeadShape(features=8, choices=3, allowed=3, continuous=False, hidden_sizes=(32,))
        return LevelModel(list(self.encoder.parameters()), list(self.actor.parameters()), list(self.value.parameters()),
                          {"head": shape})

    def evaluate(self, sample: TensorDictBase, successor: bool) -> dict[str, SoftHeadOutputs]:
        features = torch.tanh(self.encoder(sample.get("successor" if successor else "state")))
        detached = features.detach()
        policy = CategoricalPolicy(self.actor(detached).log_softmax(-1))
        return {"head": SoftHeadOutputs(features, policy, self.value(detached).squeeze(-1))}

    def batch(self, rows: int) -> TensorDict:
        state = torch.nn.functional.one_hot(torch.randint(0, 2, (rows,)), 2).float()
        action = torch.randint(0, 3, (rows,))
        head = TensorDict({"action": action, "reward": (action == state.argmax(-1)).float(),
                           "discount": torch.full((rows,), 0.9), "terminated": torch.ones(rows, dtype=torch.bool)},
                          batch_size=[rows])
        return transitions(state, state, {"head": head}, rows)


def test_a_sac_level_learns_a_contextual_bandit_from_uniformly_random_actions() -> None:
    torch.manual_seed(0)
    bandit = Bandit()
    sac = SAC(Settings(target_entropy=0.2, initial_temperature=0.1), bandit.model(), total_frames=10_000, name="bandit")
    states = torch.eye(2)
    before = bandit.evaluate(TensorDict({"state": states, "successor": states}, [2]), False)["head"].policy.probs
    for frames in range(0, 3000, 100):
        metrics = sac.update(ReplayProblem("workers", bandit.batch(100), bandit.evaluate), frames).result(sac.optimizer.lr)
    after = bandit.evaluate(TensorDict({"state": states, "successor": states}, [2]), False)["head"].policy.probs
    assert torch.allclose(before, torch.full_like(before, 1 / 3), atol=0.1)
    assert after[0, 0] > 0.8 and after[1, 1] > 0.8, after
    # Terminal one-step episodes: Q of the paying action tends to 1 and the others' to 0.
    q = sac.critics["head"](torch.tanh(bandit.encoder(states))).min(0).values
    assert q[0, 0] > 0.8 and q[1, 1] > 0.8 and q[0, 1:].abs().max() < 0.2 and q[1, [0, 2]].abs().max() < 0.2, q
    for name in ("loss/workers/critic", "loss/workers/objective", "loss/workers/temperature", "temperature/workers"):
        assert math.isfinite(metrics[name]), name


def test_the_temperature_falls_while_the_policy_is_above_its_target_entropy() -> None:
    torch.manual_seed(0)
    bandit = Bandit()
    sac = SAC(Settings(target_entropy=0.1), bandit.model(), total_frames=10_000, name="bandit")
    sac.update(ReplayProblem("workers", bandit.batch(100), bandit.evaluate), 0)
    # The first policy is near uniform (entropy ~ log 3 > 0.1): every step lowers log alpha.
    assert sac.log_temperature["head"].item() < 0.0


def test_target_q_functions_follow_by_polyak_averaging() -> None:
    torch.manual_seed(0)
    bandit = Bandit()
    sac = SAC(Settings(gradient_steps=1, learning_starts=1), bandit.model(), total_frames=10_000, name="bandit")
    before = [parameter.clone() for parameter in sac.target_critics.parameters()]
    sac.update(ReplayProblem("workers", bandit.batch(100), bandit.evaluate), 0)
    for old, target, current in zip(before, sac.target_critics.parameters(), sac.critics.parameters()):
        torch.testing.assert_close(target, old + 0.05 * (current - old))


def test_the_critic_target_is_the_soft_bellman_backup() -> None:
    torch.manual_seed(0)
    bandit = Bandit()
    sac = SAC(Settings(), bandit.model(), total_frames=10_000, name="bandit")
    rows = bandit.batch(5)
    rows.set(("head", "terminated"), torch.tensor([False, True, False, False, True]))
    successor = bandit.evaluate(rows, True)["head"]
    alpha = torch.tensor(0.3)
    target = sac._critic_target("head", rows.get("head"), successor, alpha)
    q = sac.target_critics["head"](successor.features).min(0).values
    probs, log_probs = successor.policy.probs, successor.policy.log_probs
    expected = rows.get(("head", "reward")) + 0.9 * (~rows.get(("head", "terminated"))).float() * (
        probs * (q - alpha * log_probs)).sum(-1)
    torch.testing.assert_close(target, expected)


def test_a_checkpointed_sac_level_resumes_with_its_buffer_critics_and_temperature() -> None:
    torch.manual_seed(0)
    bandit = Bandit()
    sac = SAC(Settings(), bandit.model(), total_frames=10_000, name="bandit")
    for frames in range(0, 300, 100):
        sac.update(ReplayProblem("workers", bandit.batch(100), bandit.evaluate), frames)
    restored = SAC(Settings(), bandit.model(), total_frames=10_000, name="bandit")
    restored.load_state_dict(sac.state_dict())
    assert len(restored.buffer) == len(sac.buffer) == 300
    assert torch.equal(restored.buffer[:300]["state"], sac.buffer[:300]["state"])
    assert restored.log_temperature["head"].item() == sac.log_temperature["head"].item()
    for mine, theirs in zip(restored.target_critics.parameters(), sac.target_critics.parameters()):
        assert torch.equal(mine, theirs)
