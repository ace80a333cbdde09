"""The data service: ingest, upload, clean, augment, split, profile and read datasets."""
