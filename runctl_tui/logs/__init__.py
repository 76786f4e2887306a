"""Training logs: sources (local files, remote files over SSH), decoding, search, metrics."""
