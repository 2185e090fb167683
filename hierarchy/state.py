"""Option state as env state: the active worker and its age travel between steps as primed keys.

A ``TensorDictPrimer`` declares ``(group, "manager", "option")`` and ``(group, "manager", "age")``
(zeros at every reset) and an ``InitTracker`` flags each episode's first step, where the manager
always decides. The policy reads the state and writes its successor under ``"next"``, so any
TorchRL collector carries it and episodes reset it.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torchrl.data import Composite, Unbounded
from torchrl.envs import Compose, InitTracker, TensorDictPrimer

from envs import keys

IS_INIT = "is_init"
"""Root key set by ``InitTracker``: True at the first step of an episode."""


def option_state_transforms(agents_per_group: Mapping[str, int]) -> Compose:
    """The transforms that give an env the option state of every group (``{group: number of agents}``)."""
    # Nested composites carry the agent dim so the primed state lines up with the group's data.
    primers = Composite(
        {
            group: Composite(
                {
                    keys.MANAGER: Composite(
                        {leaf: Unbounded(shape=(agents,), dtype=torch.int64) for leaf in (keys.OPTION, keys.AGE)},
                        shape=(agents,),
                    )
                },
                shape=(agents,),
            )
            for group, agents in agents_per_group.items()
        }
    )
    # Envs with agent groups have a reset key per group too; the root one resets whole envs.
    return Compose(InitTracker(init_key=IS_INIT), TensorDictPrimer(primers, expand_specs=True, reset_key="_reset"))
