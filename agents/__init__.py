"""himo: agents."""
