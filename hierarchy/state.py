"""Option state as env state: the active worker, its age, the workers' weights and the manager's goal travel between
steps as primed keys.

The env's bookkeeping transform (``himo.envs.bookkeeping``) carries ``(group, "manager", "option")``,
``(group, "manager", "age")``, ``(group, "manager", "weights")`` and, with goals, ``(group, "manager", "goal")`` (zeros at
every reset) and flags each episode's first step (``is_init``), where the manager always decides (and recurrent cores
start from zeros). With memory
(``himo.hierarchy.memory``) the cores' states are primed the same way. The policy reads the state and writes its successor under
``"next"``, so any TorchRL collector carries it and episodes reset it.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torchrl.data import Composite, Unbounded

from himo.envs import keys

IS_INIT = "is_init"
"""Root key, True at the first step of an episode."""


def option_state_spec(
    agents_per_group: Mapping[str, int],
    workers: int,
    goal_size: int = 0,
    memory_states: Mapping[tuple[str, ...], tuple[int, int]] | None = None,
) -> Composite:
    """The option state of every group (``{group: number of agents}``), as specs without the env's batch dims.

    ``weights`` (one per worker, float) is the weighted mode's mixture and the one-hot of the option in
    select mode, so both modes carry the same state; ``goal`` (``goal_size`` floats per worker, none when 0) is
    the manager's briefing of each worker for the option. ``memory_states`` maps each recurrent core's state leaf,
    as a key under the group (e.g. ``("workers", "audio", "hidden")``), to its ``(layers, size)``
    (``himo.hierarchy.memory``).
    """
    # Nested composites carry the agent dim so the primed state lines up with the group's data.
    primers = Composite(
        {
            group: Composite(
                {
                    keys.MANAGER: Composite(
                        {
                            **{leaf: Unbounded(shape=(agents,), dtype=torch.int64) for leaf in (keys.OPTION, keys.AGE)},
                            keys.WEIGHTS: Unbounded(shape=(agents, workers), dtype=torch.float32),
                            **({keys.GOAL: Unbounded(shape=(agents, workers, goal_size), dtype=torch.float32)} if goal_size else {}),
                        },
                        shape=(agents,),
                    )
                },
                shape=(agents,),
            )
            for group, agents in agents_per_group.items()
        }
    )
    for group, agents in agents_per_group.items():
        for path, shape in (memory_states or {}).items():
            parent = primers[group]
            for part in path[:-1]:
                if part not in parent.keys():
                    parent[part] = Composite(shape=(agents,))
                parent = parent[part]
            parent[path[-1]] = Unbounded(shape=(agents, *shape), dtype=torch.float32)
    return primers
