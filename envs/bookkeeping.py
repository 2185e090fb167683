"""What every himo env carries from step to step, kept by one transform.

A run's env carries, beside its own observations:

- ``is_init`` (root, ``[N, 1]`` bool): True at the first step of an episode;
- ``step_count`` (root, ``[N, 1]`` int64): steps since the episode began;
- episode sums: the running sum of each listed reward over the episode (the team reward, every reward channel);
- carried state: the option state and the recurrent cores' states (``himo.hierarchy.state``), zero at every reset
  and passed on from step to step when the policy did not write a successor.

TorchRL offers each of these as its own transform (``InitTracker``, ``StepCounter``, ``RewardSum``,
``TensorDictPrimer``), and they give the same values; one transform keeps them all because every transform in
the chain costs its own dispatch, spec lookups and key searches on each step and reset: on 8 CartPoles the four
took about as long as the 8 environments' step itself (``docs/benchmarks.md``, speed section).

Resets follow the root ``"_reset"`` entry (whole envs reset together, as the collector resets them); an env
without one resets all its copies.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torchrl.data import Bounded, Categorical, Composite
from torchrl.envs import Transform

from himo.envs import keys

RESET = "_reset"


class EpisodeBookkeeping(Transform):
    """The init flag, the step count, episode sums of rewards and carried state, in one transform.

    Args:
        state: the carried state's specs under the root, shaped without the env's batch dims (they are
            prepended from the env); zero at every reset.
        sums: ``(reward key, sum key)`` pairs: the sum key holds the reward's running episode sum.
        init_key: root key of the first-step flag.
    """

    def __init__(self, state: Composite, sums: Sequence[tuple[NestedKey, NestedKey]], init_key: str) -> None:
        super().__init__()
        self.state = state
        self.sums = [(reward, total) for reward, total in sums]
        self.init_key = init_key
        self._state_keys: list[NestedKey] = list(state.keys(True, True))
        self._carried: Composite | None = None  # the carried specs, batched: set with the env's specs

    # ------------------------------------------------------------------------------------------------ specs
    def _flag_shape(self) -> torch.Size:
        return self.parent.output_spec["full_done_spec"][keys.DONE].shape

    def _carried_specs(self, device: torch.device | None) -> Composite:
        """Step count, episode sums and state, as the env's state spec (what each step hands to the next)."""
        batch = self.parent.batch_size
        carried = self.state.expand(*batch, *self.state.shape).clone().to(device)
        carried[keys.STEP_COUNT] = Bounded(
            low=0, high=torch.iinfo(torch.int64).max, shape=self._flag_shape(), dtype=torch.int64, device=device
        )
        rewards = self.parent.output_spec["full_reward_spec"]
        for reward, total in self.sums:
            # A sum sits under composites shaped like the reward's (the group's agent dim).
            for depth in range(1, len(total)):
                if total[:depth] not in carried.keys(True):
                    carried[total[:depth]] = Composite(shape=rewards[reward[:depth]].shape, device=device)
            carried[total] = rewards[reward].clone()
        self._carried = carried
        return carried

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        device = observation_spec.device
        observation_spec[self.init_key] = Categorical(2, dtype=torch.bool, device=device, shape=self._flag_shape())
        observation_spec.update(self._carried_specs(device))
        return observation_spec

    def transform_input_spec(self, input_spec: Composite) -> Composite:
        if input_spec["full_state_spec"] is None:
            input_spec["full_state_spec"] = Composite(shape=input_spec.shape, device=input_spec.device)
        input_spec["full_state_spec"].update(self._carried_specs(input_spec.device))
        return input_spec

    # ---------------------------------------------------------------------------------------- step, reset
    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        step_count = tensordict.get(keys.STEP_COUNT)
        next_tensordict.set(self.init_key, torch.zeros(step_count.shape, dtype=torch.bool, device=step_count.device))
        next_tensordict.set(keys.STEP_COUNT, step_count + 1)
        for reward, total in self.sums:
            next_tensordict.set(total, tensordict.get(total) + next_tensordict.get(reward))
        for key in self._state_keys:
            # The policy writes each state's successor; where none acted (random actions), it carries over.
            if next_tensordict.get(key, None) is None:
                next_tensordict.set(key, tensordict.get(key))
        return next_tensordict

    def _reset(self, tensordict: TensorDictBase | None, tensordict_reset: TensorDictBase) -> TensorDictBase:
        shape = self._flag_shape()
        reset = tensordict.get(RESET, None) if tensordict is not None else None
        if reset is None:
            reset = torch.ones(shape, dtype=torch.bool, device=tensordict_reset.device)
        reset = reset.reshape(shape)
        rows = reset.reshape(shape[0])
        tensordict_reset.set(self.init_key, reset.clone())
        if self._carried is None:  # specs are built lazily: a first reset may come before them
            self._carried_specs(tensordict_reset.device)
        for key in [keys.STEP_COUNT, *(total for _, total in self.sums), *self._state_keys]:
            previous = tensordict.get(key, None) if tensordict is not None else None
            if previous is None:
                tensordict_reset.set(key, self._carried[key].zero())
            else:
                kept = ~rows.reshape(-1, *[1] * (previous.ndim - 1))
                tensordict_reset.set(key, torch.where(kept, previous, previous.new_zeros(())))
        return tensordict_reset

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        raise NotImplementedError("EpisodeBookkeeping works inside an env's step and reset only")
