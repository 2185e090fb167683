"""The networks a group's policy is built from besides the encoders: each worker's description (``WorkerSpec``), the
agents' one-hot identity, and the manager's network (fusion, heads and its optional recurrent core).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch import nn

from himo.agents.heads import ActorCriticHeads, CriticView, OptionCriticHeads
from himo.envs import keys
from himo.hierarchy.memory import RecurrentCore


@dataclass(frozen=True)
class WorkerSpec:
    """One worker of a group: the embeddings it reads and the actions it may take."""

    name: str
    inputs: tuple[tuple[str, ...], ...]
    """Embedding keys (its modalities, then its shared low-dimensional state)."""
    input_size: int
    hidden_sizes: tuple[int, ...]
    allowed_actions: tuple[int, ...] | None
    critic: CriticView = CriticView()
    """What its critic reads beside its own features (``multi_agent.critic``)."""
    controlled_parts: tuple[str, ...] | None = None
    """Named parts of a composite action it acts on; ``None``: every part."""
    memory: RecurrentCore | None = None
    """Its recurrent core between its inputs and its heads (``himo.hierarchy.memory``); ``None``: none."""


class AgentIdentity(TensorDictModuleBase):
    """Writes each agent's one-hot index within its group, an input that lets parameter-sharing agents differ."""

    def __init__(self, group: str, agents: int) -> None:
        super().__init__()
        self.group = group
        self.register_buffer("identity", torch.eye(agents))
        self.in_keys = []
        self.out_keys = [keys.agent_id(group)]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Set ``(group, "embedding", "agent_id")`` to ``[..., agents, agents]`` one-hot rows."""
        shape = tensordict.get(self.group).batch_size
        return tensordict.set(self.out_keys[0], self.identity.expand(*shape, self.identity.shape[-1]))


class ManagerNetwork(nn.Module):
    """Fusion of the detached modality embeddings, then the manager's scores over workers and a value.

    With ``option_critic`` it also has a termination head and an option-value head over the
    workers, on the same fused embedding (learned termination). With ``agent_id_size`` an input after the embeddings
    is the agent's one-hot index, appended to the fused embedding; ``critic`` says what its critic reads beside them
    (see :class:`ActorCriticHeads`): with ``critic.extra`` the next input is read by the critic alone. With ``memory``
    a recurrent core sits between the fused embedding and the heads: the inputs then end with the root ``is_init``
    and the core's state, and the outputs with its successor state.
    """

    def __init__(
        self,
        fusion: nn.Module,
        fused_size: int,
        workers: int,
        hidden_sizes: Sequence[int],
        option_critic: bool = False,
        agent_id_size: int = 0,
        critic: CriticView = CriticView(),
        memory: RecurrentCore | None = None,
    ) -> None:
        super().__init__()
        self.fusion = fusion
        self.agent_id_size = agent_id_size
        self.critic_extra = critic.extra
        self.memory = memory
        features = fused_size + agent_id_size if memory is None else memory.size
        self.heads = ActorCriticHeads(features, workers, hidden_sizes, critic=critic)
        self.option_heads = OptionCriticHeads(features, workers, hidden_sizes) if option_critic else None

    def _split(self, inputs: Sequence[torch.Tensor]) -> tuple[Sequence[torch.Tensor], ...]:
        """``(embeddings, agent id, critic-only input, memory inputs)``, each a (possibly empty) run of ``inputs``."""
        memory = 1 + len(self.memory.state_leaves) if self.memory is not None else 0
        end = len(inputs) - memory
        extra = end - (1 if self.critic_extra else 0)
        identity = extra - (1 if self.agent_id_size else 0)
        return inputs[:identity], inputs[identity:extra], inputs[extra:end], inputs[end:]

    def features(self, *inputs: torch.Tensor) -> torch.Tensor:
        """The fused embedding (and the agent id) the heads read, ``[..., features]``, from the manager's inputs."""
        embeddings, identity, _, _ = self._split(inputs)
        # Workers train the encoders; the manager learns which specialist to trust on top of them.
        return torch.cat([self.fusion(*(embedding.detach() for embedding in embeddings)), *identity], dim=-1)

    def head_inputs(self, features: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
        """What the heads read: ``features`` then, for a global critic, the critic-only input among ``inputs``."""
        _, _, extra, _ = self._split(inputs)
        return torch.cat([features, *extra], dim=-1)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(scores [..., workers], value [..., 1])``, then ``(termination logits, option values)`` if any, then the
        memory's successor state if any."""
        state: tuple[torch.Tensor, ...] = ()
        fused = self.features(*inputs)
        if self.memory is not None:
            is_init, *carried = self._split(inputs)[3]
            fused, *state = self.memory(fused, is_init, *carried)
        outputs = self.heads(self.head_inputs(fused, *inputs))
        # The option-critic heads read the manager's own view: its termination acts, like its scores.
        outputs = outputs if self.option_heads is None else (*outputs, *self.option_heads(fused))
        return (*outputs, *state)
