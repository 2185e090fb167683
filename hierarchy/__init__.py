"""himo: hierarchy."""
