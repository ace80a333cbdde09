"""Tracker plugins: mirror a training run's params and metrics into an experiment tracker."""
