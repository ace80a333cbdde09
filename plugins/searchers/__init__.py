"""Searcher plugins: propose each tuning trial's hyper-parameters (Optuna TPE, random, grid)."""
