"""Option state through the public path: a built-in scenario, its built env and policy, a TorchRL collector.

The manager must decide exactly at episode starts and where the option's age reached
``manager.termination.every``; between decisions the option is carried, also across the
collector's batch boundary; age counts 1..every; a reset clears the option state.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from tensordict import TensorDictBase
from torchrl.collectors import Collector

from himo.envs import keys
from himo.hierarchy.state import IS_INIT
from himo.envs.registry import agent_groups
from himo.scenarios.build import build_env, build_policy
from himo.scenarios.checkpoint import seed_everything
from himo.scenarios.loader import load

ENVS = 2
MAX_STEPS = 8
FRAMES_PER_BATCH = ENVS * 7  # 7 steps per batch: batch ends fall inside options and inside episodes
BATCHES = 6


def collect(every: int) -> tuple[list[TensorDictBase], str]:
    """Batches ``[envs, time]`` collected on a small beacon with options of length ``every``."""
    scenario = load(
        "beacon",
        [
            f"env.num_envs={ENVS}",
            f"env.kwargs.max_steps={MAX_STEPS}",
            f"manager.termination.every={every}",
        ],
    )
    seed_everything(0)
    env = build_env(scenario)
    policy = build_policy(scenario, env)
    (group,) = agent_groups(env)
    collector = Collector(
        env,
        policy,
        frames_per_batch=FRAMES_PER_BATCH,
        total_frames=FRAMES_PER_BATCH * BATCHES,
        auto_register_policy_transforms=False,
    )
    batches = [batch.clone() for batch in collector]
    collector.shutdown()
    return batches, group


def lanes(tensor: torch.Tensor, agents: int) -> torch.Tensor:
    """``[envs, time(, 1)]`` or ``[envs, time, agents]`` to ``[envs, agents, time]``."""
    if tensor.dim() == 3 and tensor.shape[-1] == 1:
        tensor = tensor.squeeze(-1)
    if tensor.dim() == 2:
        tensor = tensor[:, None, :].expand(tensor.shape[0], agents, tensor.shape[1])
    else:
        tensor = tensor.transpose(1, 2)
    return tensor


@pytest.fixture(scope="module")
def every3() -> tuple[list[TensorDictBase], str]:
    return collect(every=3)


def test_manager_decides_exactly_at_episode_starts_and_every_k_steps(every3) -> None:
    batches, group = every3
    every = 3
    data = torch.cat(batches, dim=1)  # [envs, time]: the collector continues each env across batches
    agents = data.get((group, keys.MANAGER, keys.OPTION)).shape[-1]
    is_init = lanes(data.get(IS_INIT), agents)
    done = lanes(data.get((keys.NEXT, keys.DONE)), agents)
    decision = lanes(data.get((group, keys.MANAGER, keys.DECISION)), agents)
    age_in = lanes(data.get((group, keys.MANAGER, keys.AGE)), agents)
    option_in = lanes(data.get((group, keys.MANAGER, keys.OPTION)), agents)
    age_out = lanes(data.get((keys.NEXT, group, keys.MANAGER, keys.AGE)), agents)
    option_out = lanes(data.get((keys.NEXT, group, keys.MANAGER, keys.OPTION)), agents)
    envs, _, steps = decision.shape

    # Enough going on for the checks below to mean something.
    assert done.sum() >= 4 * agents, "expected several episode ends within the collected batches"
    assert (decision & ~is_init).any(), "expected decisions by age, not only at episode starts"

    # Independent reference: a counter per lane, reset at each episode start.
    expected = torch.zeros_like(decision)
    for env in range(envs):
        for agent in range(agents):
            length = 0
            for t in range(steps):
                if t == 0 or is_init[env, agent, t] or length == every:
                    expected[env, agent, t], length = True, 1
                else:
                    length += 1
    assert torch.equal(decision, expected)

    # Episode start: the option state was reset by the env, and the manager decided.
    assert torch.equal(is_init[..., 1:], done[..., :-1]), "is_init marks exactly the step after an episode end"
    assert (age_in[is_init] == 0).all() and (option_in[is_init] == 0).all()
    assert decision[is_init].all()

    # Age counts 1..every: 1 at a decision, +1 otherwise.
    assert age_out.min() == 1 and age_out.max() == every
    assert torch.equal(age_out, torch.where(decision, 1, age_in + 1))

    # The option changes only at decision points, and is carried from one step to the next.
    assert torch.equal(option_out[~decision], option_in[~decision])
    carried = ~is_init[..., 1:]
    assert torch.equal(option_in[..., 1:][carried], option_out[..., :-1][carried])
    assert torch.equal(age_in[..., 1:][carried], age_out[..., :-1][carried])
    changed = option_out[..., 1:] != option_out[..., :-1]
    assert changed.any(), "the manager should sometimes switch worker (else the check below is empty)"
    assert decision[..., 1:][changed].all()


def test_option_state_crosses_the_collector_batch_boundary(every3) -> None:
    batches, group = every3
    option, age = (group, keys.MANAGER, keys.OPTION), (group, keys.MANAGER, keys.AGE)
    crossed_mid_option = 0
    for before, after in itertools.pairwise(batches):
        first = after[:, 0]
        carried = ~first.get(IS_INIT).squeeze(-1)
        assert carried.any(), "expected some env to continue its episode into the next batch"
        assert torch.equal(first.get(option)[carried], before[:, -1].get((keys.NEXT, *option))[carried])
        assert torch.equal(first.get(age)[carried], before[:, -1].get((keys.NEXT, *age))[carried])
        # Where the option was still running, the new batch does not decide.
        running = carried[:, None] & (first.get(age) < 3)
        assert not first.get((group, keys.MANAGER, keys.DECISION))[running].any()
        crossed_mid_option += int(running.sum())
    assert crossed_mid_option > 0, "some option should span a batch boundary"


def test_with_long_options_the_manager_decides_only_at_episode_starts() -> None:
    batches, group = collect(every=1000)
    data = torch.cat(batches, dim=1)
    decision = data.get((group, keys.MANAGER, keys.DECISION))
    is_init = data.get(IS_INIT).expand_as(decision)
    # The collector's first step is an episode start too.
    assert is_init[:, 0].all()
    assert torch.equal(decision, is_init)
    assert is_init[:, 1:].any(), "expected episodes to restart within the collected steps"
    # One option per episode: constant between episode starts.
    option = data.get((keys.NEXT, group, keys.MANAGER, keys.OPTION))
    same = option[:, 1:] == option[:, :-1]
    assert same[~is_init[:, 1:]].all()
    age = data.get((keys.NEXT, group, keys.MANAGER, keys.AGE))
    assert age.max() <= MAX_STEPS


def test_unvalidated_categorical_matches_torch_and_still_refuses_nan_logits() -> None:
    from torch.distributions import Categorical

    from himo.hierarchy.actions import categorical

    logits = torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.0, 0.0]])
    actions = torch.tensor([2, 1])
    torch.testing.assert_close(categorical(logits).log_prob(actions), Categorical(logits=logits).log_prob(actions))
    torch.testing.assert_close(categorical(logits).entropy(), Categorical(logits=logits).entropy())
    with pytest.raises(RuntimeError):
        categorical(torch.full((2, 3), float("nan"))).sample()
