"""Augmenter plugins: generate new rows from existing ones, seeded and reproducible."""
