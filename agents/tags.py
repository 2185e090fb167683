"""TensorBoard tags: the one naming scheme for every metric himo logs.

The step of every scalar is the number of env frames. Where an env has several agent groups,
each tag is prefixed with ``<group>/``.
"""

from __future__ import annotations

REWARD_ENV = "reward/env"
EPISODE_RETURN = "episode/return"
EPISODE_LENGTH = "episode/length"
EPISODE_COUNT = "episode/count"
EPISODE_SUCCESS_RATE = "episode/success_rate"
OPTION_LENGTH = "manager/option_length"
OPTIONS_CHOSEN = "manager/options_chosen"  # histogram: the worker index chosen at each decision
OPTION_LENGTHS = "manager/option_lengths"  # histogram: the length of each option a decision ended
TERMINATION_PROBABILITY = "manager/termination_probability"
"""Learned termination: mean ``beta_o(s_t)`` over the steps that feed the termination gradient."""
TERMINATION_ADVANTAGE = "manager/termination_advantage"
"""Learned termination: mean ``A(s_t, o)`` (option value over the manager's baseline) on those steps."""
TIME = "time/"
"""The prefix of the wall-clock tags: the only ones a resumed run does not share with the uninterrupted run."""
FPS = "time/fps"
COLLECT_SECONDS = f"{TIME}collect"
"""Seconds this process waited for the batch: collecting it, where the collector steps its envs in this process."""
EVAL_RETURN = "return"
EVAL_SUCCESS_RATE = "success_rate"
EVAL_LENGTH = "length"
SCENARIO = "scenario"


def reward_channel(worker: str) -> str:
    """Mean per-step reward of a worker's channel."""
    return f"reward/channel/{worker}"


def episode_channel_return(worker: str) -> str:
    """Mean episode return of a worker's channel."""
    return f"episode/channel_return/{worker}"


def option_frequency(worker: str) -> str:
    """Mean weight of ``worker`` at the manager's decisions: the share of decisions that chose it in select mode."""
    return f"manager/option_frequency/{worker}"


def loss(level: str, term: str) -> str:
    """A loss term of a level (``manager`` or ``workers``)."""
    return f"loss/{level}/{term}"


def head_loss(level: str, head: str, term: str) -> str:
    """A loss term of one head of a level with several (``loss/workers/<worker>/critic``)."""
    return f"loss/{level}/{head}/{term}"


def head_entropy(level: str, head: str) -> str:
    """Mean entropy of one head's policy in a level with several (``workers/<worker>/entropy``)."""
    return f"{level}/{head}/entropy"


def head_metric(name: str, level: str, head: str) -> str:
    """A diagnostic of one head of a level with several (``kl/workers/<worker>``, ``grad_norm/workers/<worker>``)."""
    return f"{name}/{level}/{head}"


def entropy(level: str) -> str:
    """Mean entropy of a level's policy (``manager/entropy``, ``workers/entropy``)."""
    return f"{level}/entropy"


def level_metric(name: str, level: str) -> str:
    """A per-level diagnostic: ``grad_norm``, ``lr``, ``kl``, ``clip_fraction``, ``entropy``, ``skipped_updates``."""
    return f"{name}/{level}"


def learn_seconds(level: str) -> str:
    """Seconds a level's update of the batch took (the workers' includes the successor values both levels bootstrap
    from)."""
    return f"{TIME}learn/{level}"


def evaluation(metric: str, sampled: bool) -> str:
    """``eval/<metric>`` of the greedy policy, ``eval/sampled/<metric>`` of the sampling one (``log.eval_every``):
    over every group (the return is the mean of the groups' team returns)."""
    return f"eval/{'sampled/' if sampled else ''}{metric}"


MEDIA_DECISIONS = "decisions"


def media(group: str, name: str) -> str:
    """``media/<group>/<name>`` (``log.media_every``): a modality's animation or sound, or the ``decisions`` table,
    of one recorded episode; always under the group, as each group's agents see their own."""
    return f"media/{group}/{name}"


def in_group(group: str, tag: str, groups: int) -> str:
    """``tag`` under ``group`` when the env has several groups, else unchanged."""
    return f"{group}/{tag}" if groups > 1 else tag


def actor_updates(rank: int) -> str:
    """Updates applied so far by actor-learner process ``rank`` (A3C)."""
    return f"actors/{rank}/updates"
