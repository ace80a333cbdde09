"""Cleaner plugins: map an Arrow table to an Arrow table plus what was dropped and why."""
