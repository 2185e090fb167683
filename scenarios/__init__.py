"""himo: scenarios."""
