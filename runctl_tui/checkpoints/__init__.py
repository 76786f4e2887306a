"""Checkpoints: where they are, what is inside them (read without unpickling), how many to keep."""
