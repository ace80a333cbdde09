"""Output rule matchers: what in a model's answer a safety rule acts on (regex, keywords...)."""
