"""What a run writes for TensorBoard beside its scalars: the HParams session, and a custom-scalars layout.

**HParams.** The scenario's main fields and the run's final metrics in TensorBoard's HParams tab, so runs compare
side by side.

At the start of a run its hyper-parameters are written as an HParams session: every scalar field of the scenario's
``env``, ``train``, ``manager``, ``multi_agent`` and ``algorithm`` sections (dotted, e.g. ``algorithm.workers.lr``),
and the number of workers. The metrics listed are scalar tags the run logs anyway (episode return per group, success
rate, frames per second): the tab reads their latest values from the same event file.

**Custom scalars.** One chart of every reward channel (and the team reward), one of every worker's option frequency,
and one of the manager's and the workers' losses side by side, per agent group.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from himo.agents import tags
from himo.scenarios.schema import Scenario

SECTIONS = ("env", "train", "manager", "multi_agent", "algorithm")
"""The scenario sections whose fields are the run's hyper-parameters."""


def _flatten(prefix: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}", item, into)
    elif isinstance(value, (bool, int, float, str)):
        into[prefix] = value
    elif value is None:
        into[prefix] = "null"


def scenario_hparams(scenario: Scenario) -> dict[str, Any]:
    """The scenario's hyper-parameters: scalar fields of :data:`SECTIONS`, dotted, and the number of workers."""
    dumped = scenario.model_dump(mode="json")
    found: dict[str, Any] = {"scenario": scenario.name, "workers": len(scenario.workers)}
    for section in SECTIONS:
        _flatten(section, dumped[section], found)
    return found


def write_hparams(writer: SummaryWriter, scenario: Scenario, groups: Sequence[str], success: bool) -> None:
    """Start the run's HParams session in ``writer``'s event file, with the tags it compares runs by."""
    metrics = [tags.in_group(group, tags.EPISODE_RETURN, len(groups)) for group in groups] + [tags.FPS]
    metrics += [tags.EPISODE_SUCCESS_RATE] if success else []
    experiment, start, end = hparams(scenario_hparams(scenario), {metric: 0.0 for metric in metrics})
    for summary in (experiment, start, end):
        writer.file_writer.add_summary(summary)


def chart_layout(groups: Sequence[str]) -> dict[str, dict[str, list]]:
    """The custom-scalars layout: per group, charts of tag patterns (TensorBoard reads each tag as a regex)."""
    layout = {}
    for group in groups:
        prefix = f"{re.escape(group)}/" if len(groups) > 1 else ""
        # Each tag function with an empty last part gives the prefix every tag of its kind starts with.
        layout[group] = {
            "reward channels": ["Multiline", [f"^{prefix}{tags.REWARD_ENV}$", f"^{prefix}{tags.reward_channel('')}"]],
            "option frequencies": ["Multiline", [f"^{prefix}{tags.option_frequency('')}"]],
            "losses, manager and workers": [
                "Multiline", [f"^{prefix}{tags.loss('manager', '')}", f"^{prefix}{tags.loss('workers', '')}"]
            ],
        }
    return layout


def write_layout(writer: SummaryWriter, groups: Sequence[str]) -> None:
    """Write the custom-scalars layout of :func:`chart_layout` to ``writer``'s event file."""
    writer.add_custom_scalars(chart_layout(groups))
