"""Word lists for text observations, built locally from the environments' own grammars.

``MINIGRID_WORDS`` covers every mission MiniGrid 3.2 and its BabyAI levels generate: the BabyAI
grammar (``minigrid/envs/babyai/core/verifier.py``: verbs, object descriptions with colour, type
and location, the connectives ``and`` / ``, then`` / ``after you``) and the fixed mission strings
of the MiniGrid environments (``minigrid/envs/*.py``). Words outside the list map to ``[UNK]``.
"""

from __future__ import annotations

# minigrid.core.constants.COLOR_NAMES and the object types a mission can name.
MINIGRID_COLORS = ("red", "green", "blue", "purple", "yellow", "grey")
MINIGRID_OBJECTS = ("box", "ball", "key", "door", "object", "goal", "square", "lava", "room", "rooms")

BABYAI_GRAMMAR = (
    # verbs of GoTo / PickUp / Open / PutNext instructions
    "go", "to", "pick", "up", "open", "put", "next",
    # determiners (singular "the", plural "a") and relative locations
    "the", "a", "in", "front", "of", "behind", "you", "on", "your", "left", "right",
    # sequencing and conjunction
    ",", "then", "after", "and",
)

MINIGRID_MISSION_WORDS = (
    "get", "green", "avoid", "find", "opening", "use", "reach", "fetch", "must", "matching",
    "at", "end", "hallway", "traverse", "near", "from", "unlock", "square",
)

MINIGRID_WORDS: tuple[str, ...] = tuple(
    dict.fromkeys(MINIGRID_COLORS + MINIGRID_OBJECTS + BABYAI_GRAMMAR + MINIGRID_MISSION_WORDS)
)
