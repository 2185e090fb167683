"""The env's one bookkeeping transform gives exactly what TorchRL's four transforms for the same things give."""

from __future__ import annotations

import pytest
import torch
from torchrl.envs import InitTracker, RewardSum, StepCounter, TensorDictPrimer, TransformedEnv

from himo.envs import keys
from himo.envs.bookkeeping import EpisodeBookkeeping
from himo.envs.registry import agent_groups
from himo.hierarchy.state import IS_INIT
from himo.scenarios.build import agents_in, build_env, episode_sums
from himo.scenarios.loader import load

# A gymnasium env with one agent, the built-in world (two agents, goals, partial resets), a PettingZoo env, and
# recurrent cores whose states are carried beside the option state.
CASES = {
    "cartpole": ("cartpole", []),
    "beacon with goals": ("beacon", ["manager.goal={size: 4}"]),
    "simple-spread": ("simple-spread", []),
    "cartpole with memory": ("cartpole", ["workers.vector.memory={kind: lstm, hidden: 8}"]),
}


def _with_torchrl_transforms(env: TransformedEnv, scenario) -> TransformedEnv:
    """The same env with the bookkeeping done by TorchRL's own transforms instead."""
    bookkeeping = env.transform.pop()
    assert isinstance(bookkeeping, EpisodeBookkeeping)
    sums = episode_sums(scenario, agent_groups(env))
    env.append_transform(InitTracker(init_key=IS_INIT))
    env.append_transform(TensorDictPrimer(bookkeeping.state.clone(), expand_specs=True, reset_key="_reset"))
    env.append_transform(
        RewardSum(in_keys=[reward for reward, _ in sums], out_keys=[total for _, total in sums], reset_keys=["_reset"] * len(sums))
    )
    env.append_transform(StepCounter())
    return env


def _rollout(env: TransformedEnv, steps: int) -> list:
    """Steps with random actions and a random option state written before each step (as a policy writes it); every
    tenth step also resets some copies through ``env.reset`` with the whole data (the others keep theirs)."""
    torch.manual_seed(3)
    generator = torch.Generator().manual_seed(4)
    state_keys = [(group, keys.MANAGER, keys.OPTION) for group in agent_groups(env)]
    data = env.reset()
    steps_seen = []
    for _ in range(steps):
        data = env.rand_action(data)
        for key in state_keys:
            data.set(key, torch.randint(0, 3, data.get(key).shape, generator=generator))
        step, data = env.step_and_maybe_reset(data)
        steps_seen.append(step.clone())
        if len(steps_seen) % 10 == 0:
            some = torch.arange(data.shape[0]).remainder(2).bool().unsqueeze(-1)
            data = env.reset(data.clone().set("_reset", some))
            steps_seen.append(data.clone())
    return steps_seen


@pytest.mark.parametrize("case", list(CASES))
def test_the_bookkeeping_matches_torchrl_transforms_step_for_step(case: str) -> None:
    name, overrides = CASES[case]
    scenario = load(name, [*overrides, "env.num_envs=3"])
    ours = build_env(scenario)
    reference = _with_torchrl_transforms(build_env(scenario), scenario)
    assert ours.full_observation_spec == reference.full_observation_spec
    assert ours.full_state_spec == reference.full_state_spec
    ours_steps, reference_steps = _rollout(ours, 60), _rollout(reference, 60)
    assert any(step.get((keys.NEXT, keys.DONE), torch.tensor(False)).any() for step in ours_steps), "no episode ended: resets untested"
    for mine, theirs in zip(ours_steps, reference_steps, strict=True):
        assert set(mine.keys(True, True)) == set(theirs.keys(True, True))
        for key in mine.keys(True, True):
            assert torch.equal(mine.get(key), theirs.get(key)), key


def test_the_carried_state_resets_with_its_episode_only() -> None:
    scenario = load("beacon", ["env.num_envs=4", "env.kwargs.max_steps=5"])
    env = build_env(scenario)
    option = ("agents", keys.MANAGER, keys.OPTION)
    data = env.reset()
    assert data.get(IS_INIT).all() and not data.get(keys.STEP_COUNT).any()
    for step_number in range(1, 8):
        data = env.rand_action(data)
        data.set(option, torch.full_like(data.get(option), 2))
        step, data = env.step_and_maybe_reset(data)
        ended = step.get((keys.NEXT, keys.DONE)).squeeze(-1)
        assert not step.get((keys.NEXT, IS_INIT)).any()
        assert (step.get((keys.NEXT, option)) == 2).all()
        # After the step: ended copies start again (flag set, count and state zero), the others go on.
        assert torch.equal(data.get(IS_INIT).squeeze(-1), ended)
        assert (data.get(keys.STEP_COUNT).squeeze(-1)[ended] == 0).all()
        assert (data.get(option)[ended] == 0).all() and (data.get(option)[~ended] == 2).all()
        assert (data.get(("agents", keys.EPISODE_REWARD))[ended] == 0).all()
    assert agents_in(env, "agents") == 2


def test_the_bookkeeping_is_not_a_module_on_its_own() -> None:
    env = build_env(load("cartpole", ["env.num_envs=2"]))
    with pytest.raises(NotImplementedError, match="inside an env"):
        env.transform[-1](env.reset())
