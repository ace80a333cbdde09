"""Generated from proto/forgeline_service_example/v1/ by scripts/generate.py; never edited by hand."""
