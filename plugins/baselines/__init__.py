"""Baseline plugins: classical text classifiers fitted beside the neural models on one split."""
