"""Fairness mitigator plugins: threshold_optimizer (post-processing) and exponentiated_gradient."""
