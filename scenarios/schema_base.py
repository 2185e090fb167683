"""The base of every scenario section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Base of every scenario section: unknown fields are errors, values are frozen.

    Floats must be finite: no scenario field has a use for nan or inf, and one that slipped through
    would only surface later, as a failed training step.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
