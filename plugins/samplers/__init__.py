"""Replay sampler plugins: which memory samples to replay beside new data (continual learning)."""
