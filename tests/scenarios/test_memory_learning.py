"""Learning is proved by learning: on a task only memory solves (``recall``: a cue at the first step, the choice
three steps later), a recurrent worker succeeds and a memoryless one cannot (each measured greedy on fresh episodes)."""

from __future__ import annotations

from pathlib import Path

from short_runs import greedy_success_of
from recall import RECALL_ID, SIZE


# An entropy bonus of 0.03 (rather than the default 0.01) keeps a recurrent worker from settling early on a policy
# that names only three of the four cues (see the spread below).
LEVEL = "{name: ppo, lr: 3.0e-3, minibatch_size: 256, epochs: 4, entropy_coef: 0.03}"


def greedy_success(folder: Path, memory: str) -> float:
    return greedy_success_of(
        folder,
        "recall",
        f"""
name: recall
env: {{id: gymnasium/{RECALL_ID}, num_envs: 16, success_above: 0.5}}
modalities:
  cue: {{key: cue, encoder: mlp, embedding_dim: 16}}
workers:
  cue: {{hidden: [32], memory: {memory}}}
algorithm: {{workers: {LEVEL}, manager: {LEVEL}}}
train: {{frames: 24576, frames_per_batch: 512, seed: 0}}
log: {{dir: {folder}}}
""",
    )


def test_a_recurrent_worker_acts_on_a_cue_it_no_longer_sees(tmp_path: Path) -> None:
    recurrent = greedy_success(tmp_path / "gru", "{kind: gru, hidden: 32}")
    memoryless = greedy_success(tmp_path / "none", "null")
    # A memoryless policy names the cue in at most 1 / SIZE of the episodes (see recall). With the suite's settings at
    # 71a1c61, 24,576 frames: a GRU gave 1.0 for each of seeds 0-11 and no memory 0.300, 0.220, 0.255 for seeds 0-2.
    # With the default bonus of 0.01, seed 2 of seeds 0-5 settled on three cues of four (0.745); with 0.05, seed 4 of
    # seeds 0-11 (0.780);
    # at 16,384 frames (0.03) seeds 1 and 2 had not yet separated the four cues (0.695, 0.745).
    assert SIZE == 4 and memoryless <= 0.4, memoryless
    assert recurrent >= 0.9, recurrent
