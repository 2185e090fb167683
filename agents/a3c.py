"""A3C for one level: A2C's update, applied by several actor-learner processes to shared parameters.

Each process (``himo.scenarios.asynchronous``) collects its own batches with the shared policy and, after
each batch, takes A2C's gradient step straight on the shared parameters with an optimiser whose
state is shared too, without waiting for the others (asynchronous, lock-free updates as in
Mnih et al., 2016). This module holds the level algorithm and the sharing of its optimiser state.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from himo.agents.a2c import A2C, A2CConfig
from himo.agents.declaration import AlgorithmDeclaration, Collection, Targets
from himo.agents.optim import LevelOptimizer


class A3CConfig(A2CConfig):
    """Asynchronous advantage actor-critic: train.actors processes each take A2C's step on shared parameters."""

    name: Literal["a3c"]


class A3C(A2C):
    """The update each A3C process applies: A2C's one policy-gradient step on its whole batch."""


def share_optimizer_state(optimizer: LevelOptimizer) -> list[dict[str, Any]]:
    """Create the torch optimiser's per-parameter state now, in shared memory; returns it in parameter order.

    A step with zero gradients at learning rate 0 creates the state (and changes no parameter); its
    step counters are then set back to 0 so the first real step is the first.
    """
    if optimizer.optimizer is None:  # frozen: nothing to share
        return []
    torch_optimizer = optimizer.optimizer
    rates = [group["lr"] for group in torch_optimizer.param_groups]
    for group in torch_optimizer.param_groups:
        group["lr"] = 0.0
    for parameter in optimizer.parameters:
        parameter.grad = torch.zeros_like(parameter)
    torch_optimizer.step()
    torch_optimizer.zero_grad(set_to_none=True)
    for group, rate in zip(torch_optimizer.param_groups, rates):
        group["lr"] = rate
    states = []
    for parameter in optimizer.parameters:
        state = torch_optimizer.state[parameter]
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                if name == "step":
                    value.zero_()
                value.share_memory_()
        states.append(state)
    return states


def attach_optimizer_state(optimizer: LevelOptimizer, states: list[dict[str, Any]]) -> None:
    """Make ``optimizer`` (built over this process's view of the shared parameters) use the shared ``states``."""
    if optimizer.optimizer is None:
        return
    if len(states) != len(optimizer.parameters):
        raise ValueError(f"{optimizer.name}: {len(states)} shared optimiser states for {len(optimizer.parameters)} parameters")
    for parameter, state in zip(optimizer.parameters, states):
        optimizer.optimizer.state[parameter] = state


DECLARATION = AlgorithmDeclaration(
    name="a3c", config=A3CConfig, algorithm=A3C, targets=Targets.GAE, collection=Collection.ASYNCHRONOUS
)
