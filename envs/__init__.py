"""himo: envs."""
