"""himo: modalities."""
