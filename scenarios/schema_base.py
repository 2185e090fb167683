"""The base of every scenario section, and the read-only mapping type its fields use."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, WrapSerializer


class Section(BaseModel):
    """Base of every scenario section: unknown fields are errors, values are frozen.

    Floats must be finite: no scenario field has a use for nan or inf, and one that slipped through
    would only surface later, as a failed training step.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _read_only(value: Mapping) -> Mapping:
    return MappingProxyType(dict(value))


def FrozenMapping(value_type: Any) -> Any:  # noqa: N802 - reads as a type in annotations
    """A ``str``-keyed mapping that is read-only after validation and dumps as a plain dict."""
    return Annotated[
        Mapping[str, value_type],
        AfterValidator(_read_only),
        WrapSerializer(lambda value, handler: handler(dict(value))),
    ]
