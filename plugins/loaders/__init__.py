"""Loader plugins: turn a source (file, folder, URL list) into an Arrow table."""
