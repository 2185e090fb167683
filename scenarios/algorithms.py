"""The scenario section ``algorithm``: the learning algorithm of each level, one section per algorithm.

Each algorithm's own section sits beside its class (``himo.agents.<name>``); this module only makes
the union of the registered ones (``himo.agents.registry.ALGORITHMS``), chosen by ``name``.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, field_validator

from himo.agents.registry import ALGORITHMS
from himo.scenarios.schema_base import Section

DEFAULT_ALGORITHM = next(iter(ALGORITHMS))
"""The algorithm of a section that names none (ppo)."""

LevelAlgorithmSection = Annotated[
    Union[tuple(declaration.config for declaration in ALGORITHMS.values())], Field(discriminator="name")
]
"""How one level learns; ``name`` picks the section's fields."""


def with_default_name(value: Any) -> Any:
    """A bare name is shorthand for ``{name: <name>}``; a section without a name is the default algorithm's."""
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, dict) and "name" not in value:
        return {**value, "name": DEFAULT_ALGORITHM}
    return value


def default_section() -> Any:
    """The default algorithm's section with its defaults."""
    return ALGORITHMS[DEFAULT_ALGORITHM].config(name=DEFAULT_ALGORITHM)


class AlgorithmConfig(Section):
    """The learning algorithm of each level; a bare name is shorthand for {name: <name>}."""

    manager: LevelAlgorithmSection = Field(default_factory=default_section, description="Manager level.")
    workers: LevelAlgorithmSection = Field(default_factory=default_section, description="Worker level.")

    @field_validator("manager", "workers", mode="before")
    @classmethod
    def _name_shorthand(cls, value: Any) -> Any:
        return with_default_name(dict(value) if hasattr(value, "keys") else value)
