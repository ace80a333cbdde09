"""Scheduler plugins: decide after each epoch whether a tuning trial goes on (ASHA, FIFO)."""
