"""The web console: pages (one HTML file, its script and style, shipped in this package: no build
step, nothing from the internet) and the JSON and server-sent-event routes they call under
/console/api, over the gateway (runs, their events, cancel and retry, their reports) and the
serving service (deployments; trying one goes through the API's own /v1 routes).

The pages are public, like the OpenAPI page: they hold no data. Every /console/api route needs
the bearer token when auth is on; the page asks for it once and sends it on each call (the
events are read with fetch, not EventSource, so the header goes with them too).
"""

from __future__ import annotations

from forgeline.services.http.console.routes import STATIC, router

__all__ = ["STATIC", "router"]
