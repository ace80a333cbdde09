"""The gRPC services, one folder each: servicer.py (gRPC <-> domain) beside domain modules."""
