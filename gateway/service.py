"""The gateway's domain: validating pipelines against the live services, running them, and
reading runs back. No gRPC server code here (that is gateway/servicer.py); the services are
reached through forgeline.client, found at the addresses the settings give."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from forgeline.client import Client
from forgeline.gateway import catalog as C
from forgeline.gateway import runs as R
from forgeline.gateway.catalog import Checked, discover
from forgeline.gateway.orchestrator import Audit, Orchestrator, RunOutcome
from forgeline.gateway.remote import RemoteService
from forgeline.gateway.spec import Pipeline, PipelineInvalid, invalid
from forgeline.server import installed_services
from forgeline.service_spec import health_kind
from forgeline.settings import Settings


@dataclass
class Validated:
    pipeline: Pipeline
    checked: Checked


class Gateway:
    def __init__(self, settings: Settings, store: R.RunStore, audit: Audit | None = None) -> None:
        """``audit`` records runs and promotion decisions (the kernel's outbox: a safety
        service that is down or slow delays them, never loses them)."""
        self.settings = settings
        self.store = store
        self._remotes: dict[str, RemoteService] = {}
        self._lock = threading.Lock()
        self.orchestrator = Orchestrator(store, self.remote, audit=audit)

    def close(self) -> None:
        with self._lock:
            for remote in self._remotes.values():
                remote.client.close()
            self._remotes.clear()

    # --- services -------------------------------------------------------------------------------
    def remote(self, name: str) -> RemoteService:
        """The service ``name`` at its configured address, discovered once and kept."""
        with self._lock:
            if name in self._remotes:
                return self._remotes[name]
        address = self.settings.address_for(name)
        timeout = self.settings.call_timeout_seconds
        client = Client(
            address, token=self.settings.auth_token or None, timeout=timeout, stream_timeout=timeout
        )
        try:
            catalog = discover(name, client)
        except BaseException:
            client.close()
            raise
        with self._lock:
            return self._remotes.setdefault(
                name, RemoteService(catalog, client, timeout, self.settings.call_retry_seconds)
            )

    def forget(self, name: str) -> None:
        """Drops a service's catalog (it restarted, or its plugins changed)."""
        with self._lock:
            remote = self._remotes.pop(name, None)
        if remote is not None:
            remote.client.close()

    def known_services(self) -> list[str]:
        return known_services(self.settings)

    # --- validation -----------------------------------------------------------------------------
    def validate(self, text: str, overrides: list[str]) -> Validated:
        """The pipeline checked against every service it names; InvalidArgument with every
        problem as a field violation (FAILED_PRECONDITION-free: an unreachable service is one
        of the problems, named with its address)."""
        try:
            validation = C.validate(
                text, overrides, self.known_services(), lambda name: self.remote(name).catalog
            )
        except PipelineInvalid as exc:  # not YAML, or not a mapping: nothing more to check
            raise invalid(exc.problems) from None
        if validation.problems:
            raise invalid(validation.problems)
        return Validated(validation.pipeline, validation.checked)

    # --- running --------------------------------------------------------------------------------
    def run(self, run: str, text: str, overrides: list[str], no_cache: bool, ctx) -> RunOutcome:
        validated = self.validate(text, overrides)
        return self.orchestrator.run(run, validated.pipeline, validated.checked, ctx, no_cache)


def known_services(settings: Settings) -> list[str]:
    """Services a step may call: those installed here (the platform's among them) and any the
    settings give an address for (a third party's service runs anywhere)."""
    names = {*installed_services(), *settings.addresses}
    # Not a step's service: a non-gRPC face (the HTTP face) has no methods a pipeline calls.
    return sorted(n for n in names - {"gateway"} if health_kind(n) == "grpc")
