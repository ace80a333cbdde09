"""The tuning service: searches a training request's hyper-parameters with Ray Tune and Optuna."""
