"""The transitions SAC stores: every step for the workers, one per option (the semi-MDP) for the manager."""

from __future__ import annotations

import torch
from tensordict import TensorDict

from himo.envs import keys
from himo.hierarchy.replay import manager_transitions, worker_transitions

GAMMA = 0.9


def batch(decisions: list[bool], done_at: int | None = None) -> TensorDict:
    """One env, one agent, ``len(decisions)`` steps; observation ``x`` is the step index, the next one ``t + 1``;
    team reward 1 per step, worker ``a``'s channel 2 per step; the option chosen at step ``t`` is ``t % 2``."""
    steps = len(decisions)
    time = torch.arange(steps, dtype=torch.float32).reshape(1, steps, 1)
    ended = torch.zeros(1, steps, 1, 1, dtype=torch.bool)
    if done_at is not None:
        ended[0, done_at] = True
    group = TensorDict(
        {
            keys.OBSERVATION: {"x": time.unsqueeze(-1)},
            keys.ACTION: torch.zeros(1, steps, 1, dtype=torch.long),
            keys.MANAGER: {keys.DECISION: torch.tensor(decisions).reshape(1, steps, 1)},
        },
        batch_size=[1, steps, 1],
    )
    after = TensorDict(
        {
            keys.OBSERVATION: {"x": (time + 1).unsqueeze(-1)},
            keys.REWARD: torch.ones(1, steps, 1, 1),
            keys.REWARD_CHANNELS: {"a": torch.full((1, steps, 1, 1), 2.0)},
            keys.TERMINATED: ended,
            keys.DONE: ended.clone(),
            keys.MANAGER: {keys.OPTION: (time.long() % 2)},
        },
        batch_size=[1, steps, 1],
    )
    return TensorDict({"agent": group, keys.NEXT: {"agent": after}}, batch_size=[1, steps])


def test_every_step_is_a_worker_transition_with_its_own_channel() -> None:
    rows = worker_transitions(batch([True] * 4), "agent", ["a"], GAMMA)
    assert rows.shape == (4,)
    torch.testing.assert_close(rows.get(("state", keys.OBSERVATION, "x")).flatten(), torch.arange(4.0))
    torch.testing.assert_close(rows.get(("successor", keys.OBSERVATION, "x")).flatten(), torch.arange(1.0, 5.0))
    torch.testing.assert_close(rows.get(("a", "reward")).flatten(), torch.full((4,), 2.0))
    torch.testing.assert_close(rows.get(("a", "discount")).flatten(), torch.full((4,), GAMMA))


def test_the_manager_stores_one_transition_per_option_with_its_discounted_reward_and_gamma_to_the_k() -> None:
    rows, mean_length = manager_transitions(batch([True, False, False, True, False, False, False]), "agent", GAMMA)
    assert rows.shape == (2,) and mean_length == 3.5
    torch.testing.assert_close(rows.get(("state", keys.OBSERVATION, "x")).flatten(), torch.tensor([0.0, 3.0]))
    # Successor: the observation after each option's last step (steps 2 and 6, the batch end).
    torch.testing.assert_close(rows.get(("successor", keys.OBSERVATION, "x")).flatten(), torch.tensor([3.0, 7.0]))
    head = rows.get("manager")
    torch.testing.assert_close(head.get("reward"), torch.tensor([1 + GAMMA + GAMMA**2, 1 + GAMMA + GAMMA**2 + GAMMA**3]))
    torch.testing.assert_close(head.get("discount"), torch.tensor([GAMMA**3, GAMMA**4]))
    assert head.get("action").tolist() == [0, 1] and rows.get("agent").tolist() == [0, 0]


def test_an_option_ended_by_a_terminal_state_does_not_bootstrap() -> None:
    rows, _ = manager_transitions(batch([True, False, False, True, False], done_at=1), "agent", GAMMA)
    head = rows.get("manager")
    # The first option ends with its episode after step 1: two steps, terminated; step 2 began nothing (no decision).
    assert head.get("terminated").tolist() == [True, False]
    torch.testing.assert_close(head.get("reward")[0], torch.tensor(1 + GAMMA))
    torch.testing.assert_close(rows.get(("successor", keys.OBSERVATION, "x")).flatten(), torch.tensor([2.0, 5.0]))
