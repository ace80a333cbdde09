"""The gateway's domain: validating pipelines against the live services, running them, and
reading runs back. No gRPC server code here (that is gateway/servicer.py); the services are
reached through forgeline.client, found at the addresses the settings give."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from forgeline.client import Client
from forgeline.errors import FieldViolation, InvalidArgument, Unavailable
from forgeline.gateway import runs as R
from forgeline.gateway.catalog import Checked, ServiceCatalog, check, discover
from forgeline.gateway.orchestrator import Audit, Orchestrator, RunOutcome
from forgeline.gateway.remote import RemoteService
from forgeline.gateway.spec import Pipeline, PipelineInvalid, Problem, parse_all
from forgeline.server import installed_services
from forgeline.settings import DEFAULT_PORTS, Settings


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
        """Services a step may call: the platform's, those installed here, and any the settings
        give an address for (a third party's service runs anywhere)."""
        names = {*DEFAULT_PORTS, *installed_services(), *self.settings.addresses}
        return sorted(names - {"gateway"})

    # --- validation -----------------------------------------------------------------------------
    def validate(self, text: str, overrides: list[str]) -> Validated:
        """The pipeline checked against every service it names; InvalidArgument with every
        problem as a field violation (FAILED_PRECONDITION-free: an unreachable service is one
        of the problems, named with its address)."""
        try:
            pipeline, problems = parse_all(text, overrides)
        except PipelineInvalid as exc:  # not YAML, or not a mapping: nothing more to check
            raise invalid(exc.problems) from None
        catalogs: dict[str, ServiceCatalog] = {}
        known = self.known_services()
        for service in dict.fromkeys(s.service for s in pipeline.steps):
            if service not in known:
                for step in (s for s in pipeline.steps if s.service == service):
                    problems.append(
                        Problem(
                            f"steps.{step.name}.call",
                            f"no service {service!r}; known: {', '.join(known)}",
                        )
                    )
                continue
            try:
                catalogs[service] = self.remote(service).catalog
            except Unavailable as exc:
                first = next(s for s in pipeline.steps if s.service == service)
                problems.append(Problem(f"steps.{first.name}.call", str(exc)))
        # A step on an unknown or unreachable service was reported above; check() would only
        # add "no service" for it.
        unreachable = {s.name for s in pipeline.steps if s.service not in catalogs}
        found, checked = check(pipeline, catalogs)
        problems += [
            p
            for p in found
            if not (p.field.split(".")[1] in unreachable and p.field.endswith(".call"))
            and p not in problems
        ]
        if problems:
            raise invalid(problems)
        return Validated(pipeline, checked)

    # --- running --------------------------------------------------------------------------------
    def run(self, run: str, text: str, overrides: list[str], no_cache: bool, ctx) -> RunOutcome:
        validated = self.validate(text, overrides)
        return self.orchestrator.run(run, validated.pipeline, validated.checked, ctx, no_cache)


def invalid(problems: list[Problem]) -> InvalidArgument:
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return InvalidArgument(
        f"the pipeline is not valid: {first}{more}",
        reason="PIPELINE_INVALID",
        violations=[FieldViolation(p.field, p.description) for p in problems],
    )
