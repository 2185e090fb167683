"""What an algorithm is, declared once beside its class: its scenario section, its class, how its
targets are estimated, how it collects, and what it refuses.

The registry (``himo.agents.registry.ALGORITHMS``) is a plain dict of these declarations, and every
other table (the scenario schema's union of sections, the learner's dispatch, the collection layout,
the validation of combinations) derives from it. Adding an algorithm is one module that ends with its
``DECLARATION`` and one line in the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from himo.agents.settings import LevelAlgorithmConfig


class Targets(Enum):
    """What a level learns from, computed by the hierarchical learner (``himo.hierarchy.learner``)."""

    GAE = "gae"
    """Generalised advantage estimates and returns of the batch, collected with the current policy."""
    VTRACE = "vtrace"
    """V-trace advantages and returns: the batch may come from a lagged policy."""
    REPLAY = "replay"
    """Transitions stored in the level's replay buffer (off-policy)."""


class Collection(Enum):
    """How a run collects its data; the trained levels of one run must agree (they share the collection)."""

    SYNCHRONOUS = "collects with the current policy in the training process"
    LAGGED = "whose actors run on lagged copies of the policy"
    ASYNCHRONOUS = "whose processes collect and update shared parameters without waiting for each other"

    @property
    def uses_actor_processes(self) -> bool:
        """Whether ``train.actors`` processes collect (the other layout collects in the training process)."""
        return self is not Collection.SYNCHRONOUS


@dataclass(frozen=True)
class AlgorithmDeclaration:
    """One learning algorithm, usable at either level.

    The capability flags say what the algorithm refuses; the schema turns each refusal into an error
    naming the field, with ``refusal`` as the reason.
    """

    name: str
    """The scenario name (``algorithm.<level>.name``)."""
    config: type[LevelAlgorithmConfig]
    """Its scenario section (fields, defaults and descriptions)."""
    algorithm: type
    """The class, built as ``algorithm(settings, level_model, total_frames, name)`` (``himo.agents.base.LevelAlgorithm``)."""
    targets: Targets
    collection: Collection
    diagnostics: tuple[str, ...] = ()
    """Its own per-level metrics, logged as ``<name>/<level>`` beside losses, entropy, grad norm and lr."""
    weighted_manager: bool = True
    """A manager in weighted mode (it learns the sampled weights over workers)."""
    learned_termination: bool = True
    """A manager with learned termination (option values regress on the on-policy semi-MDP returns)."""
    composite_actions: bool = True
    """Workers acting on parts of a composite action."""
    refusal: str = ""
    """Why the combinations it refuses cannot be made to work, for the error message."""
