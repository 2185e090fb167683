"""The hierarchical policy: per group, encoders, a manager over workers, and the option selector.

At every step, for every agent: each modality is encoded once; every worker's heads give logits
and a value for its own reward channel; the manager reads the fused (detached) embeddings of all
modalities. At a decision point (episode start, or the option's age reached ``every``) the
manager picks a worker; otherwise the active worker is carried over from the previous step. The
active worker's logits give the action. The option state is read from ``(group, "manager", ...)``
and written to ``("next", group, "manager", ...)``, so it travels as env state (see
``hierarchy.state``) and any TorchRL collector carries it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictModuleBase, TensorDictSequential
from torch import nn
from torch.distributions import Categorical
from torchrl.envs.utils import ExplorationType, exploration_type

from agents.heads import ActorCriticHeads
from envs import keys
from hierarchy.state import IS_INIT


@dataclass(frozen=True)
class WorkerSpec:
    """One worker of a group: the embeddings it reads and the actions it may take."""

    name: str
    inputs: tuple[tuple[str, ...], ...]
    """Embedding keys (its modalities, then its shared low-dimensional state)."""
    input_size: int
    hidden_sizes: tuple[int, ...]
    allowed_actions: tuple[int, ...] | None


class ManagerNetwork(nn.Module):
    """Fusion of the detached modality embeddings, then manager logits over workers and a value."""

    def __init__(self, fusion: nn.Module, fused_size: int, workers: int, hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        self.fusion = fusion
        self.heads = ActorCriticHeads(fused_size, workers, hidden_sizes)

    def forward(self, *embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits [..., workers], value [..., 1])``."""
        # Workers train the encoders; the manager learns which specialist to trust on top of them.
        fused = self.fusion(*(embedding.detach() for embedding in embeddings))
        return self.heads(fused)


def greedy() -> bool:
    """Whether the current exploration type asks for the most likely choice instead of a sample."""
    return exploration_type() in (ExplorationType.DETERMINISTIC, ExplorationType.MODE)


class OptionSelector(TensorDictModuleBase):
    """``select`` mode with ``interval`` termination: who acts now, and the action it takes."""

    def __init__(self, group: str, workers: Sequence[str], every: int) -> None:
        super().__init__()
        self.group = group
        self.workers = list(workers)
        self.every = every
        self.in_keys = [
            IS_INIT,
            keys.manager(group, keys.OPTION),
            keys.manager(group, keys.AGE),
            keys.manager(group, keys.LOGITS),
            *(keys.worker(group, name, keys.LOGITS) for name in self.workers),
        ]
        self.out_keys = [
            keys.manager(group, keys.DECISION),
            keys.manager(group, keys.LOG_PROB),
            (keys.NEXT, *keys.manager(group, keys.OPTION)),
            (keys.NEXT, *keys.manager(group, keys.AGE)),
            (group, keys.ACTION),
            *(keys.worker(group, name, keys.LOG_PROB) for name in self.workers),
        ]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Decide where due, carry the option elsewhere, sample (or take the mode of) the action."""
        group = self.group
        previous = tensordict.get(keys.manager(group, keys.OPTION))
        age = tensordict.get(keys.manager(group, keys.AGE))
        decision = tensordict.get(IS_INIT).expand_as(previous) | (age >= self.every)
        manager = Categorical(logits=tensordict.get(keys.manager(group, keys.LOGITS)))
        choice = manager.mode if greedy() else manager.sample()
        option = torch.where(decision, choice, previous)

        logits = torch.stack([tensordict.get(keys.worker(group, name, keys.LOGITS)) for name in self.workers], dim=-2)
        index = option[..., None, None].expand(*option.shape, 1, logits.shape[-1])
        acting = Categorical(logits=logits.gather(-2, index).squeeze(-2))
        action = acting.mode if greedy() else acting.sample()
        worker_log_probs = logits.log_softmax(-1).gather(-1, action[..., None, None].expand(*action.shape, len(self.workers), 1))

        tensordict.set(keys.manager(group, keys.DECISION), decision)
        tensordict.set(keys.manager(group, keys.LOG_PROB), manager.log_prob(option))
        tensordict.set((keys.NEXT, *keys.manager(group, keys.OPTION)), option)
        tensordict.set((keys.NEXT, *keys.manager(group, keys.AGE)), torch.where(decision, 1, age + 1))
        tensordict.set((group, keys.ACTION), action)
        for index, name in enumerate(self.workers):
            tensordict.set(keys.worker(group, name, keys.LOG_PROB), worker_log_probs[..., index, 0])
        return tensordict


class GroupPolicy(TensorDictModuleBase):
    """The hierarchical policy of one agent group (its agents share these parameters).

    Args:
        group: the agent group.
        encoders: modality name -> encoder module writing ``(group, "embedding", modality)``.
        shared_encoders: observation key -> small encoder of a shared low-dimensional state.
        workers: the workers, in the manager's choice order.
        manager: the manager network, reading every modality's embedding.
        actions: number of discrete actions of the group.
        every: option length (interval termination).
    """

    def __init__(
        self,
        group: str,
        encoders: Mapping[str, TensorDictModuleBase],
        shared_encoders: Mapping[str, TensorDictModuleBase],
        workers: Sequence[WorkerSpec],
        manager: ManagerNetwork,
        actions: int,
        every: int,
    ) -> None:
        super().__init__()
        self.group = group
        self.worker_names = [worker.name for worker in workers]
        self.encoders = nn.ModuleDict(encoders)
        self.shared_encoders = nn.ModuleDict({name.replace(".", "_"): module for name, module in shared_encoders.items()})
        self.workers = nn.ModuleDict(
            {
                worker.name: TensorDictModule(
                    ActorCriticHeads(worker.input_size, actions, worker.hidden_sizes, worker.allowed_actions),
                    in_keys=list(worker.inputs),
                    out_keys=[keys.worker(group, worker.name, keys.LOGITS), keys.worker(group, worker.name, keys.STATE_VALUE)],
                )
                for worker in workers
            }
        )
        self.manager = TensorDictModule(
            manager,
            in_keys=[keys.embedding(group, modality) for modality in encoders],
            out_keys=[keys.manager(group, keys.LOGITS), keys.manager(group, keys.STATE_VALUE)],
        )
        self.selector = OptionSelector(group, self.worker_names, every)
        # Built only to compute the declared keys; the modules stay registered once, above.
        chain = TensorDictSequential(*self._encoding_modules(), *self.workers.values(), self.manager, self.selector)
        self.in_keys = list(chain.in_keys)
        self.out_keys = list(chain.out_keys)

    def _encoding_modules(self) -> list[TensorDictModuleBase]:
        return [*self.encoders.values(), *self.shared_encoders.values()]

    def encode(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Every modality's embedding and every shared state's embedding."""
        for module in self._encoding_modules():
            module(tensordict)
        return tensordict

    def evaluate(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Embeddings, every worker's logits and value, and the manager's logits and value (no decision)."""
        self.evaluate_workers(tensordict)
        return self.manager(tensordict)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Evaluate the networks, then decide and act."""
        return self.selector(self.evaluate(tensordict))

    def evaluate_workers(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Embeddings and every worker's logits and value (what the worker level learns through)."""
        self.encode(tensordict)
        for worker in self.workers.values():
            worker(tensordict)
        return tensordict

    def evaluate_manager(self, tensordict: TensorDictBase) -> TensorDictBase:
        """The manager's logits and value; the embeddings it reads are computed without gradient."""
        with torch.no_grad():
            self.encode(tensordict)
        return self.manager(tensordict)

    def worker_parameters(self) -> list[nn.Parameter]:
        """Parameters of the worker level: encoders, shared-state encoders and worker heads."""
        modules = [*self.encoders.values(), *self.shared_encoders.values(), *self.workers.values()]
        return [parameter for module in modules for parameter in module.parameters()]

    def manager_parameters(self) -> list[nn.Parameter]:
        """Parameters of the manager level: its fusion and heads."""
        return list(self.manager.parameters())


class HierarchicalPolicy(TensorDictModuleBase):
    """One :class:`GroupPolicy` per agent group, applied in turn."""

    def __init__(self, groups: Mapping[str, GroupPolicy]) -> None:
        super().__init__()
        self.groups = nn.ModuleDict(groups)
        self.in_keys = sorted({key for policy in self.groups.values() for key in policy.in_keys}, key=str)
        self.out_keys = [key for policy in self.groups.values() for key in policy.out_keys]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Act for every group."""
        for policy in self.groups.values():
            policy(tensordict)
        return tensordict
