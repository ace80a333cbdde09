"""The fine-tuning engine the services share: the request as plain data (spec), its checks and
plan (planning), the base model built from a config (build), the recipe every worker runs in
named stages (recipe), its metric points (metrics), its run on Ray Train (runner) and the commit
of a finished run as an artifact (commit). The training service serves it over gRPC; tuning,
compression and memory fine-tune with it without importing that service. No gRPC here."""
