"""Memory: a recurrent core between a level's encoders and its heads, on TorchRL's ``GRUModule`` / ``LSTMModule``.

A core reads ``[..., agents, features]`` (a worker: its concatenated inputs; the manager: its fused embedding) and
gives ``[..., agents, size]`` to the heads. Its state (``hidden``, and an LSTM's ``cell``, ``[..., agents, layers,
size]``) travels as env state beside the option state (``himo.hierarchy.state``): the policy reads it at
``(group, ..., "hidden")`` and writes its successor at ``("next", group, ..., "hidden")``, and it is zero at every
reset. Where the root ``"is_init"`` is set (an episode's first step) the core starts from zeros, whatever it reads.

It runs in one of TorchRL's two recurrent modes (``torchrl.modules.set_recurrent_mode``):

- **sequential** (the default, acting): every row is one step, with the state stored for it;
- **recurrent** (learning): the input is ``[runs, time, agents, features]``, each run a sequence of consecutive
  steps of one env, and the core runs over time from the state stored at each run's first step, starting again
  from zeros where ``is_init`` is set inside a run. The successor states it returns are TorchRL's: zeros except at
  the end of each trajectory (learning reads only the output).

TorchRL's modules take time as the last batch dimension and ``is_init`` per row, so the core lays the agents out as
rows of their own (``[runs * agents, time]``) in a TensorDict of its own, and its state keeps the agent dimension
like the group's other entries.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict
from torch import nn
from torchrl.modules import GRUModule, LSTMModule
from torchrl.modules.tensordict_module.rnn import recurrent_mode, set_recurrent_mode

from himo.envs import keys

_INPUT, _OUTPUT, _IS_INIT = "input", "output", "is_init"

STATE_LEAVES = {"gru": (keys.HIDDEN,), "lstm": (keys.HIDDEN, keys.CELL)}
"""The state a core of each kind carries between steps."""


class RecurrentCore(nn.Module):
    """A GRU or LSTM over each agent's features, carried between steps.

    Args:
        kind: ``"gru"`` or ``"lstm"``.
        input_size: features per agent.
        size: hidden size (the heads read this many features).
        layers: stacked recurrent layers.
    """

    def __init__(self, kind: str, input_size: int, size: int, layers: int = 1) -> None:
        super().__init__()
        if kind not in STATE_LEAVES:
            raise ValueError(f"unknown memory kind {kind!r}; expected one of {sorted(STATE_LEAVES)}")
        self.kind, self.size, self.layers = kind, size, layers
        self.state_leaves = STATE_LEAVES[kind]
        module = GRUModule if kind == "gru" else LSTMModule
        self.rnn = module(
            input_size=input_size,
            hidden_size=size,
            num_layers=layers,
            in_keys=[_INPUT, *self.state_leaves, _IS_INIT],
            out_keys=[_OUTPUT, *((keys.NEXT, leaf) for leaf in self.state_leaves)],
        )

    @property
    def state_shape(self) -> tuple[int, int]:
        """``(layers, size)``: the shape of each state leaf per agent."""
        return (self.layers, self.size)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(output [..., agents, size], *next state [..., agents, layers, size])``.

        ``inputs`` are the features ``[*batch, agents, features]`` (several are concatenated), then the root
        ``is_init`` ``[*batch, 1]``, then each state leaf ``[*batch, agents, layers, size]``; in recurrent mode
        ``batch`` is ``(runs, time)``.
        """
        split = len(inputs) - 1 - len(self.state_leaves)
        features = torch.cat([feature.float() for feature in inputs[:split]], dim=-1)
        is_init, state = inputs[split], inputs[split + 1 :]
        starts = is_init.unsqueeze(-2).expand(*features.shape[:-1], 1)
        if recurrent_mode():
            return self._sequences(features, starts, state)
        rows = features.shape[:-1]
        inputs = TensorDict(
            {
                _INPUT: features.reshape(-1, features.shape[-1]),
                _IS_INIT: starts.reshape(-1, 1),
                **{leaf: value.reshape(-1, *self.state_shape) for leaf, value in zip(self.state_leaves, state)},
            },
            batch_size=[starts.numel()],
        )
        with set_recurrent_mode(False):
            out = self.rnn(inputs)
        return (
            out.get(_OUTPUT).reshape(*rows, self.size),
            *(out.get((keys.NEXT, leaf)).reshape(*rows, *self.state_shape) for leaf in self.state_leaves),
        )

    def _sequences(self, features: torch.Tensor, starts: torch.Tensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        if features.dim() != 4:
            raise ValueError(f"recurrent mode reads [runs, time, agents, features], got {tuple(features.shape)}")
        runs, steps, agents = features.shape[:3]

        def lanes(tensor: torch.Tensor) -> torch.Tensor:  # [runs, time, agents, ...] -> [runs * agents, time, ...]
            return tensor.transpose(1, 2).reshape(runs * agents, steps, *tensor.shape[3:])

        def back(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.reshape(runs, agents, steps, *tensor.shape[2:]).transpose(1, 2)

        begins = lanes(starts)
        # TorchRL restarts a sequence from the state stored where is_init is set: make sure it is zeros there.
        stored = {leaf: lanes(value).masked_fill(begins[..., None], 0.0) for leaf, value in zip(self.state_leaves, state)}
        inputs = TensorDict({_INPUT: lanes(features), _IS_INIT: begins, **stored}, batch_size=[runs * agents, steps])
        with set_recurrent_mode(True):
            out = self.rnn(inputs)
        return (back(out.get(_OUTPUT)), *(back(out.get((keys.NEXT, leaf))) for leaf in self.state_leaves))
