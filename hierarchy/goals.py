"""The manager's briefing: a goal for the option, computed from every modality, read by the acting worker.

At each decision the manager also sets a **goal**: a vector ``g = tanh(G(e_1, ..., e_M))`` of the
modality embeddings of the step, held in the option state (``(group, "manager", "goal")``, zeros at
every reset) until the next decision. Every worker reads the goal in force
(``(group, "manager", "active_goal")``) beside its own modality, in its actor and its critic. So a
task that needs two modalities at once is solved by the manager reading the one (which beacon: text)
and the worker acting on the other (where: sound).

How the goal learns: end to end, through the workers' losses. In learning, each step's goal is
recomputed, with gradient, from the observation at the decision that set it (``himo.hierarchy.semi_mdp.decision_steps``),
so a worker's policy gradient and critic loss reach ``G`` and the encoders it reads. A goal set before
the batch began is read as stored. It is chosen over the alternatives (a goal sampled as part of the
manager's action, or discrete goal codes) because it is the one whose credit is not left to the manager's
sparse semi-MDP reward: the worker's own gradient says what it needs to know. ``G`` is optimised with the worker level
and is held fixed when the manager is frozen (the briefing is the manager's) or the workers are.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchrl.modules import MLP


class GoalNetwork(nn.Module):
    """``tanh(MLP(concatenated modality embeddings))``: the goal a decision sets.

    Args:
        in_features: the summed size of the modality embeddings it reads.
        size: the goal's size.
        hidden_sizes: hidden layers of the MLP.
    """

    def __init__(self, in_features: int, size: int, hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        self.size = size
        self.network = MLP(in_features=in_features, out_features=size, num_cells=list(hidden_sizes), activation_class=nn.Tanh)

    def forward(self, *embeddings: torch.Tensor) -> torch.Tensor:
        """The goal ``[..., size]`` of each agent from its embeddings ``[..., features_m]``."""
        return torch.tanh(self.network(torch.cat([embedding.float() for embedding in embeddings], dim=-1)))

