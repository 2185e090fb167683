"""Overrides that keep a test's training run of a built-in scenario to a few seconds."""

SMALL_BEACON = [
    "env.num_envs=4",
    "env.kwargs.max_steps=8",
    "train.frames=512",
    "train.frames_per_batch=256",
    "algorithm.workers.epochs=1",
    "algorithm.manager.epochs=1",
]
