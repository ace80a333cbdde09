"""Input filter plugins: what in a user's text a safety rule acts on (blocklist, PII...)."""
