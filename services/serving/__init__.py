"""The serving service: deployed classifiers behind their safety policy, micro-batched."""
