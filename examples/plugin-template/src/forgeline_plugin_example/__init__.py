"""An example third-party forgeline plugin package: one cleaner, ``mask_urls``.

Nothing is registered on import; forgeline finds the cleaner through the entry point that
pyproject.toml declares under ``forgeline.cleaners``.
"""
