"""Where a run stands between two batches, beyond its policy and learners: what an exact resume needs.

A resume point holds, as they were after a batch's update:

- every random generator (torch, Python, NumPy), under ``"random"``;
- under ``"collection"``: the collector's own state (``Collector.state_dict()``: its frame and batch
  counters and the transforms' buffers; without the policy, which a checkpoint holds once), the
  TensorDict the collector carries into the next step (the observation, the step counters, the
  running episode returns, the option state) and the env's own state (``himo.envs.env_state``).

TorchRL's collector keeps the carried TensorDict in ``_carrier`` and offers no public way to read or
set it (its ``load_state_dict`` starts fresh trajectories), so this module is the one place that
touches it. An env whose state cannot be captured (the Gymnasium and PettingZoo adapters) gets no
carried TensorDict saved either, as it would not match the fresh env it would meet: a run of such
an env resumes with fresh episodes and everything else restored.
"""

from __future__ import annotations

import copy
from typing import Any

from tensordict import TensorDictBase
from torchrl.collectors import Collector
from torchrl.envs import EnvBase

from himo.envs.env_state import can_capture, capture_env_state, restore_env_state
from himo.scenarios.checkpoint import random_states, restore_random_states

CARRIER = "_carrier"
"""The collector's attribute holding the TensorDict that the next step starts from."""


def _carried(collector: Collector) -> TensorDictBase:
    carried = getattr(collector, CARRIER, None)
    if not isinstance(carried, TensorDictBase):
        raise RuntimeError(
            f"the installed torchrl's Collector keeps no {CARRIER!r} TensorDict: where its envs stand cannot be saved"
        )
    return carried


def capture_resume_point(collector: Collector | None, env: EnvBase) -> dict[str, Any]:
    """A copy of the state of collection (``collector`` stepping ``env``) and of the random generators, right now.

    ``collector`` is None where the envs run in actor processes (asynchronous collection): only the
    random generators are captured, and such a run resumes with fresh episodes.
    """
    if collector is None:
        return {"random": random_states(), "collection": None}
    collector_state = {name: value for name, value in collector.state_dict().items() if name != "policy_state_dict"}
    env_state = capture_env_state(env)
    carried = _carried(collector).clone() if env_state["base"] is not None else None
    return {
        "random": random_states(),
        "collection": {"collector": copy.deepcopy(collector_state), "carried": carried, "env": env_state},
    }


def restore_resume_point(collector: Collector | None, env: EnvBase, point: dict[str, Any]) -> bool:
    """Put ``collector``, ``env`` and the random generators back where :func:`capture_resume_point` found them.

    Call it after building the collector (which resets the env and runs the policy once). Returns
    whether the envs continue their episodes (True) or start fresh ones, because the env's state was
    not saved or cannot be restored, or the envs run in actor processes (``collector`` None). Raises ``ValueError`` when the point belongs to another setup.
    """
    collection = point["collection"]
    if collection is None or collector is None:
        restore_random_states(point["random"])
        return False
    exact = collection["carried"] is not None and can_capture(env)
    restore_env_state(env, collection["env"], restore_base=exact)
    collector.load_state_dict(collection["collector"], strict=False)
    if exact:
        _carried(collector)  # a clear error if this torchrl's collector keeps it elsewhere
        carried = collection["carried"]  # checkpoints are read onto the CPU
        setattr(collector, CARRIER, carried.clone() if env.device is None else carried.to(env.device).clone())
    restore_random_states(point["random"])
    return exact
