"""The hierarchical policy: per group, encoders, a manager over workers, and the option selector.

At every step, for every agent: each modality is encoded once; every worker's heads give logits
and a value for its own reward channel; the manager reads the fused (detached) embeddings of all
modalities and scores the workers (with learned termination, it also gives each worker's
termination logit and option value). The selector (``hierarchy.selectors``) then decides where
due, carries the option elsewhere and takes the action. The option state is read from
``(group, "manager", ...)`` and written to ``("next", group, "manager", ...)``, so it travels as
env state (see ``hierarchy.state``) and any TorchRL collector carries it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictModuleBase, TensorDictSequential
from torch import nn

from agents.heads import ActorCriticHeads, OptionCriticHeads
from envs import keys
from hierarchy.selectors import OptionRules, OptionSelector


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
    """Fusion of the detached modality embeddings, then the manager's scores over workers and a value.

    With ``option_critic`` it also has a termination head and an option-value head over the
    workers, on the same fused embedding (learned termination).
    """

    def __init__(
        self, fusion: nn.Module, fused_size: int, workers: int, hidden_sizes: Sequence[int], option_critic: bool = False
    ) -> None:
        super().__init__()
        self.fusion = fusion
        self.heads = ActorCriticHeads(fused_size, workers, hidden_sizes)
        self.option_heads = OptionCriticHeads(fused_size, workers, hidden_sizes) if option_critic else None

    def forward(self, *embeddings: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(scores [..., workers], value [..., 1])``, then ``(termination logits, option values)`` if any."""
        # Workers train the encoders; the manager learns which specialist to trust on top of them.
        fused = self.fusion(*(embedding.detach() for embedding in embeddings))
        outputs = self.heads(fused)
        return outputs if self.option_heads is None else (*outputs, *self.option_heads(fused))


class GroupPolicy(TensorDictModuleBase):
    """The hierarchical policy of one agent group (its agents share these parameters).

    Args:
        group: the agent group.
        encoders: modality name -> encoder module writing ``(group, "embedding", modality)``.
        shared_encoders: observation key -> small encoder of a shared low-dimensional state.
        workers: the workers, in the manager's choice order.
        manager: the manager network, reading every modality's embedding.
        actions: number of discrete actions of the group.
        rules: the manager's mode and termination.
    """

    def __init__(
        self,
        group: str,
        encoders: Mapping[str, TensorDictModuleBase],
        shared_encoders: Mapping[str, TensorDictModuleBase],
        workers: Sequence[WorkerSpec],
        manager: ManagerNetwork,
        actions: int,
        rules: OptionRules,
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
        if rules.learned != (manager.option_heads is not None):
            raise ValueError("learned termination needs a manager network with option-critic heads, and only it")
        self.rules = rules
        manager_outputs = [keys.manager(group, keys.LOGITS), keys.manager(group, keys.STATE_VALUE)]
        if rules.learned:
            manager_outputs += [keys.manager(group, keys.TERMINATION_LOGITS), keys.manager(group, keys.OPTION_VALUES)]
        self.manager = TensorDictModule(
            manager, in_keys=[keys.embedding(group, modality) for modality in encoders], out_keys=manager_outputs
        )
        self.selector = OptionSelector(group, self.worker_names, rules)
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
        """Embeddings, every worker's logits and value, and the manager's outputs (no decision)."""
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
        """The manager's outputs (scores, value, and termination logits and option values if learned).

        The embeddings it reads are computed without gradient.
        """
        with torch.no_grad():
            self.encode(tensordict)
        return self.manager(tensordict)

    def worker_parameters(self) -> list[nn.Parameter]:
        """Parameters of the worker level: encoders, shared-state encoders and worker heads."""
        modules = [*self.encoders.values(), *self.shared_encoders.values(), *self.workers.values()]
        return [parameter for module in modules for parameter in module.parameters()]

    def manager_parameters(self) -> list[nn.Parameter]:
        """Parameters of the manager level: its fusion and heads (termination and option-value heads included)."""
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
