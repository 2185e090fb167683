"""Learning to communicate: in a two-group signalling game (``signal_game``, speaker-listener shrunk to two steps)
the speaker's words come to carry the target, measured by the listener's greedy success on fresh episodes, against
the same game where the listener cannot hear (both trained here)."""

from __future__ import annotations

from pathlib import Path

from short_runs import greedy_success_of
from signal_game import SIZE


def greedy_success(folder: Path, deaf: bool) -> float:
    return greedy_success_of(
        folder,
        "signal-game",
        f"""
name: signal-game
env: {{id: pettingzoo/signal_game, kwargs: {{deaf: {str(deaf).lower()}}}, num_envs: 16, success_above: 0.5}}
modalities:
  vector: {{key: state, encoder: mlp, embedding_dim: 16}}
multi_agent: {{critic: global}}
algorithm: {{workers: {{name: ppo, lr: 3.0e-3, minibatch_size: 128, epochs: 4}}}}
train: {{frames: 12288, frames_per_batch: 512, seed: 0}}
log: {{dir: {folder}}}
""",
    )


def test_the_speakers_words_come_to_carry_the_target(tmp_path: Path) -> None:
    hearing = greedy_success(tmp_path / "hearing", deaf=False)
    deaf = greedy_success(tmp_path / "deaf", deaf=True)
    # A listener that cannot hear succeeds in 1 / SIZE of the episodes (a third) whatever it learns. Measured at this
    # budget, seeds 0-2: hearing 1.0 / 1.0 / 1.0, deaf 0.365 / 0.370 / 0.275; with local critics instead of global
    # ones, hearing reached only 0.645 / 0.630 / 0.645 (the speaker's critic cannot see what the listener heard).
    assert SIZE == 3 and deaf <= 0.45, deaf
    assert hearing >= 0.9, hearing
