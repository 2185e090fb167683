"""What the hierarchy benchmarks share: the flat variant of a scenario."""

from __future__ import annotations

import json

from scenarios.schema import Scenario


def flat_overrides(base: Scenario) -> str:
    """``--set`` override making ``base`` flat: one worker reading every modality and shared state.

    The flat worker learns from every shaping signal the specialists get (the largest weight of
    each component), so the comparison is about the hierarchy, not about the rewards.
    """
    reward: dict[str, float] = {}
    for worker in base.workers.values():
        for component, weight in worker.reward.items():
            reward[component] = max(weight, reward.get(component, weight))
    shared = sorted({key for worker in base.workers.values() for key in worker.shared})
    worker = {"modalities": list(base.modalities), "shared": shared, "reward": reward}
    return f"workers={{flat: {json.dumps(worker)}}}"
