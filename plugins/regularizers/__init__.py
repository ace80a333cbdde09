"""Built-in regularizers for continual learning: ewc (elastic weight consolidation) and none."""
