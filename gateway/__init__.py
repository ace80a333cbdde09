"""The gateway: pipelines that chain the services, and the run reports (the gateway issue)."""
