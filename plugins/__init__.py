"""Built-in strategies, registered through entry points exactly like third-party plugins."""
