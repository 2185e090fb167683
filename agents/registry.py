"""The learning algorithms a level can use, by scenario name (``algorithm.<level>.name``).

Each entry is the :class:`~himo.agents.declaration.AlgorithmDeclaration` at the end of the algorithm's own
module; the scenario schema, the learner and the collection layout all read this dict.
"""

from __future__ import annotations

from himo.agents import a2c, a3c, impala, ppo, sac, trpo
from himo.agents.declaration import AlgorithmDeclaration, Collection

ALGORITHMS: dict[str, AlgorithmDeclaration] = {
    module.DECLARATION.name: module.DECLARATION for module in (ppo, a2c, a3c, trpo, impala, sac)
}
"""Name -> declaration; the first entry (ppo) is the default of a section that names none."""


def collections_of(*names: str) -> set[Collection]:
    """How the algorithms ``names`` collect (a run's levels: a frozen level keeps its algorithm's layout)."""
    return {ALGORITHMS[name].collection for name in names}
