"""The memory service: stored samples with their embeddings, replay through samplers plugins, and
continual updates of a model without forgetting."""
