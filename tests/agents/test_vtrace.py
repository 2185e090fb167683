"""V-trace targets against the paper's definition, on-policy returns, clipping, per-step discounts."""

import math

import pytest
import torch

from himo.agents.vtrace import vtrace_targets

LANES, TIME = 3, 9


def random_rollout(seed: int, *, on_policy: bool = False, ratio_range: float = 1.0) -> dict[str, torch.Tensor]:
    """Random [lanes, time] inputs in float64 with episode ends: some terminated, some truncated."""
    generator = torch.Generator().manual_seed(seed)

    def normal() -> torch.Tensor:
        return torch.randn(LANES, TIME, generator=generator, dtype=torch.float64)

    behaviour = normal()
    log_ratio = ratio_range * (2 * torch.rand(LANES, TIME, generator=generator, dtype=torch.float64) - 1)
    done = torch.rand(LANES, TIME, generator=generator) < 0.3
    done[0, 3] = done[1, 5] = True
    terminated = done & (torch.rand(LANES, TIME, generator=generator) < 0.5)
    terminated[0, 3], terminated[1, 5] = True, False  # at least one of each kind
    value, next_value = normal(), normal()
    # Within an episode the next observation is the following step's: V(x_{t+1}) is value[t + 1].
    next_value[:, :-1] = torch.where(done[:, :-1], next_value[:, :-1], value[:, 1:])
    return {
        "behaviour_log_prob": behaviour,
        "target_log_prob": behaviour.clone() if on_policy else behaviour + log_ratio,
        "value": value,
        "next_value": next_value,
        "reward": normal(),
        "done": done,
        "terminated": terminated,
    }


def reference_vtrace(
    rollout: dict[str, torch.Tensor], gamma: float | torch.Tensor, rho_clip: float, c_clip: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The definition, term by term: v_s = V(x_s) + sum_{t>=s} (prod_{s<=i<t} gamma_i c_i) delta_t."""
    value, next_value, reward = rollout["value"], rollout["next_value"], rollout["reward"]
    done, terminated = rollout["done"], rollout["terminated"]
    ratio = (rollout["target_log_prob"] - rollout["behaviour_log_prob"]).exp()
    rho, c = ratio.clamp(max=rho_clip), ratio.clamp(max=c_clip)
    discount = torch.as_tensor(gamma, dtype=torch.float64).expand(LANES, TIME)
    bootstrap = torch.where(terminated, 0.0, discount)  # no bootstrap after a termination
    delta = rho * (reward + bootstrap * next_value - value)
    advantage = torch.zeros(LANES, TIME, dtype=torch.float64)
    target = torch.zeros(LANES, TIME, dtype=torch.float64)
    for lane in range(LANES):
        for start in range(TIME):
            total, weight = 0.0, 1.0
            for step in range(start, TIME):
                total += weight * float(delta[lane, step])
                if done[lane, step]:
                    break
                weight *= float(discount[lane, step] * c[lane, step])
            target[lane, start] = float(value[lane, start]) + total
        for step in range(TIME):
            ends = bool(done[lane, step]) or step == TIME - 1
            next_target = next_value[lane, step] if ends else target[lane, step + 1]
            advantage[lane, step] = rho[lane, step] * (
                reward[lane, step] + bootstrap[lane, step] * next_target - value[lane, step]
            )
    return advantage, target


@pytest.mark.parametrize(("rho_clip", "c_clip"), [(1.0, 1.0), (0.5, 1.0), (2.0, 0.7), (1.0, 0.3)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_definition_with_episode_ends(seed: int, rho_clip: float, c_clip: float) -> None:
    rollout = random_rollout(seed, ratio_range=1.5)
    advantage, target = vtrace_targets(**rollout, gamma=0.9, rho_clip=rho_clip, c_clip=c_clip)
    expected_advantage, expected_target = reference_vtrace(rollout, 0.9, rho_clip, c_clip)
    torch.testing.assert_close(target, expected_target)
    torch.testing.assert_close(advantage, expected_advantage)


def test_per_step_discounts_match_the_definition() -> None:
    rollout = random_rollout(3, ratio_range=1.0)
    durations = torch.randint(1, 5, (LANES, TIME), generator=torch.Generator().manual_seed(3))
    gamma = 0.95 ** durations.double()  # e.g. manager decisions that lasted `durations` env steps
    advantage, target = vtrace_targets(**rollout, gamma=gamma, rho_clip=1.0, c_clip=0.9)
    expected_advantage, expected_target = reference_vtrace(rollout, gamma, 1.0, 0.9)
    torch.testing.assert_close(target, expected_target)
    torch.testing.assert_close(advantage, expected_advantage)


@pytest.mark.parametrize("clip", [1.0, 3.0])
def test_on_policy_targets_are_discounted_returns(clip: float) -> None:
    rollout = random_rollout(4, on_policy=True)
    gamma = 0.97
    returns = torch.zeros(LANES, TIME, dtype=torch.float64)
    for lane in range(LANES):
        following = float(rollout["next_value"][lane, -1])
        for step in reversed(range(TIME)):
            if rollout["done"][lane, step]:
                following = 0.0 if rollout["terminated"][lane, step] else float(rollout["next_value"][lane, step])
            following = float(rollout["reward"][lane, step]) + gamma * following
            returns[lane, step] = following
    advantage, target = vtrace_targets(**rollout, gamma=gamma, rho_clip=clip, c_clip=clip)
    torch.testing.assert_close(target, returns)
    torch.testing.assert_close(advantage, returns - rollout["value"])


def test_importance_weights_are_clipped_at_rho_clip() -> None:
    rollout = random_rollout(5)
    clip = 0.5
    # Every ratio is at least the clip, so all of them clip to exactly 0.5.
    rollout["target_log_prob"] = rollout["behaviour_log_prob"] + math.log(clip) + 2 * torch.rand(LANES, TIME).double()
    clipped = vtrace_targets(**rollout, gamma=0.9, rho_clip=clip, c_clip=clip)
    rollout["target_log_prob"] = rollout["behaviour_log_prob"] + math.log(clip)
    exact = vtrace_targets(**rollout, gamma=0.9, rho_clip=clip, c_clip=clip)
    torch.testing.assert_close(clipped, exact)
    # One terminated step: v = V + rho (r - V) with rho = min(rho_clip, pi/mu).
    one_step = {name: tensor[:1, :1] for name, tensor in rollout.items()}
    one_step["done"] = one_step["terminated"] = torch.ones(1, 1, dtype=torch.bool)
    one_step["target_log_prob"] = one_step["behaviour_log_prob"] + math.log(3.0)
    advantage, target = vtrace_targets(**one_step, gamma=0.9, rho_clip=clip)
    torch.testing.assert_close(advantage, clip * (one_step["reward"] - one_step["value"]))
    torch.testing.assert_close(target, one_step["value"] + clip * (one_step["reward"] - one_step["value"]))


def test_outputs_are_constants_and_shapes_are_checked() -> None:
    rollout = random_rollout(6)
    rollout["target_log_prob"].requires_grad_(True)
    rollout["value"].requires_grad_(True)
    advantage, target = vtrace_targets(**rollout, gamma=0.9)
    assert advantage.shape == target.shape == (LANES, TIME)
    assert not advantage.requires_grad and not target.requires_grad
    rollout["reward"] = rollout["reward"][:, :-1]
    with pytest.raises(ValueError, match="one shape"):
        vtrace_targets(**rollout, gamma=0.9)
