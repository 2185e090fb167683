"""The manager's briefing: a goal for each worker, computed from every modality, read by that worker.

At each decision the manager also sets a **goal** for each worker: a vector ``g_w = tanh(G_w(e_1, ..., e_M))``
of the modality embeddings of the step, held in the option state (``(group, "manager", "goal")``,
``[..., workers, size]``, zeros at every reset) until the next decision. Worker ``w`` reads its goal in force
(``(group, "workers", w, "goal")``, written from ``(group, "manager", "active_goal")``) beside its own modality,
in its actor and its critic. So a task that needs two modalities at once is solved by the manager reading the one
(which beacon: text) and the worker acting on the other (where: sound).

Why one goal network per worker: with one goal shared by every worker, each worker's losses pull it toward what
that worker lacks. Measured on the built-in world (docs/hierarchy-results.md): the shared
goal of three workers separated the missions far less than the goal of a single worker did (the blind text
worker pulls it toward where things are), and the audio worker went to the wrong beacon about as often as
without goals. With its own network, each worker's goal learns only what that worker needs.

How the goal learns: end to end, through the workers' losses. In learning, each step's goals are
recomputed, with gradient, from the observation at the decision that set them (``himo.hierarchy.semi_mdp.decision_steps``),
so a worker's policy gradient and critic loss reach its ``G_w`` and the encoders it reads. A goal set before
the batch began is read as stored. It is chosen over the alternatives (a goal sampled as part of the
manager's action, or discrete goal codes) because it is the one whose credit is not left to the manager's
sparse semi-MDP reward: the worker's own gradient says what it needs to know. The ``G_w`` are optimised with the
worker level and held fixed when the manager is frozen (the briefing is the manager's) or the workers are.

How often: by default a goal is set at the decision and held for the option, as the option itself is. With
``refresh: step`` the goals are recomputed from each step's observations while the chosen worker still acts for
the whole option (the manager then briefs continuously, as a feudal manager emits a goal at every step): what
the acting worker cannot sense (lava ahead for the audio worker, a beacon out of view for the image worker)
stays current, where a held goal describes the decision's step. In learning, each step's goal is then
recomputed from its own observation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchrl.modules import MLP


class GoalNetwork(nn.Module):
    """One goal per worker, ``tanh(MLP_w(concatenated modality embeddings))``: the goals a decision sets.

    Each worker has a network of its own: its goal learns only from its own losses, so what one worker needs to be
    told (the blind text worker: where things are) does not crowd out what another needs (the audio worker: which
    beacon).

    Args:
        in_features: the summed size of the modality embeddings it reads.
        size: the size of each worker's goal.
        hidden_sizes: hidden layers of each MLP.
        workers: how many workers it briefs.
        every_step: the goals are recomputed from the observations at every step (the worker chosen still acts for
            the whole option); False: set at each decision and held for the option.
    """

    def __init__(
        self, in_features: int, size: int, hidden_sizes: Sequence[int], workers: int, every_step: bool = False
    ) -> None:
        super().__init__()
        self.size = size
        self.every_step = every_step
        self.networks = nn.ModuleList(
            MLP(in_features=in_features, out_features=size, num_cells=list(hidden_sizes), activation_class=nn.Tanh)
            for _ in range(workers)
        )

    def forward(self, *embeddings: torch.Tensor) -> torch.Tensor:
        """The goals ``[..., workers, size]`` of each agent from its embeddings ``[..., features_m]``."""
        features = torch.cat([embedding.float() for embedding in embeddings], dim=-1)
        return torch.stack([torch.tanh(network(features)) for network in self.networks], dim=-2)
