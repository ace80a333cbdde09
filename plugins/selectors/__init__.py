"""Built-in selectors for continual learning: confidence and all."""
