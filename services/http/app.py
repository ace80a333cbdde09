"""The ASGI app: health, REST predict for classifiers, the OpenAI-compatible routes, the web
console (console/), auth, and every failure answered with the status errors.HTTP_STATUS gives it.

The serving service and the gateway are called over asyncio gRPC on the app's own event loop.
/healthz, the OpenAPI page and the console's pages are public (like gRPC health; the pages hold
no data); every /v1 and /console/api route needs the bearer token when auth is on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from google.protobuf.json_format import MessageToDict
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from forgeline.errors import (
    FieldViolation,
    ForgelineError,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unauthenticated,
    from_status,
)
from forgeline.server import bearer_accepted
from forgeline.services.http.errors import http_status, openai_body, rest_body
from forgeline.services.http.upstream import Gateway, Upstream
from forgeline.settings import Settings
from forgeline.v1 import serving_service_pb2 as pb

# Routes whose errors take OpenAI's body shape (the official client reads it).
OPENAI_PREFIXES = ("/v1/models", "/v1/chat/", "/v1/completions")


def create_app(
    settings: Settings, upstream: Upstream | None = None, gateway: Gateway | None = None
) -> FastAPI:
    """The app over ``upstream`` (default: the serving service the settings name) and, for the
    web console, ``gateway`` (default: the gateway the settings name)."""
    from forgeline.services.http.console import STATIC
    from forgeline.services.http.console import router as console_router
    from forgeline.services.http.openai_api import router as openai_router

    client = upstream or Upstream(settings)
    runs = gateway or Gateway(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await client.close()
        await runs.close()
        if _app.state.artifacts is not None:  # the console's shared store, when it opened one
            _app.state.artifacts.close()

    app = FastAPI(
        title="forgeline HTTP API",
        summary="REST predict for classifiers and an OpenAI-compatible API for generative "
        "deployments, in front of the serving service.",
        version="1",
        lifespan=lifespan,
    )
    app.state.settings, app.state.upstream, app.state.gateway = settings, client, runs
    app.state.artifacts, app.state.opening = None, asyncio.Lock()
    app.add_middleware(BodyLimit, limit=settings.max_message_bytes)
    app.add_exception_handler(ForgelineError, _forgeline_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> JSONResponse:
        """200 when the serving service answers SERVING, else 503."""
        up = await client.serving()
        state = "SERVING" if up else "NOT_SERVING"
        return JSONResponse(
            {"status": state, "upstream": {"serving": state}}, status_code=200 if up else 503
        )

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/console")

    @app.get("/console", tags=["console"])
    async def console() -> FileResponse:
        """The web console (its pages hold no data; what they show comes from /console/api)."""
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    guarded = [Depends(authorized)]
    app.include_router(rest_router, dependencies=guarded)
    app.include_router(openai_router, dependencies=guarded)
    app.include_router(console_router, dependencies=guarded)
    return app


# --- auth ---------------------------------------------------------------------------------------


def caller_token(request: Request) -> str:
    """The caller's Authorization header, forwarded to the serving service as it came."""
    return request.headers.get("authorization", "")


async def authorized(request: Request) -> None:
    """With auth on (FORGELINE_AUTH_TOKEN), the same bearer token as the gRPC services."""
    token = request.app.state.settings.auth_token
    if token and not bearer_accepted(caller_token(request), token):
        raise Unauthenticated(
            "missing or wrong bearer token: send the header 'Authorization: Bearer <token>'",
            reason="BAD_TOKEN",
        )


# --- errors -------------------------------------------------------------------------------------


def error_response(request: Request, error: ForgelineError) -> JSONResponse:
    """``error`` as this route's clients read errors (OpenAI's shape or the REST one)."""
    openai = request.url.path.startswith(OPENAI_PREFIXES)
    body = openai_body(error) if openai else rest_body(error)
    headers = {"WWW-Authenticate": "Bearer"} if http_status(error) == 401 else None
    return JSONResponse(body, status_code=http_status(error), headers=headers)


async def _forgeline_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ForgelineError)
    return error_response(request, exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's request validation as INVALID_ARGUMENT naming each field (the body's own
    path, e.g. "messages.0.content"), never echoing the input."""
    assert isinstance(exc, RequestValidationError)
    violations = []
    for problem in exc.errors():
        where = [str(p) for p in problem.get("loc", ())]
        if problem.get("type") == "json_invalid":  # its loc is a character offset
            where = []
        elif where and where[0] in ("body", "path", "query"):
            where = where[1:]
        violations.append(FieldViolation(".".join(where) or "body", str(problem.get("msg", ""))))
    message = "; ".join(f"{v.field}: {v.description}" for v in violations)
    return error_response(request, InvalidArgument(message, violations=violations))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own refusals (no such route, wrong method) in the same bodies."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error = NotFound(f"no route {request.method} {request.url.path}", reason="NO_ROUTE")
        return error_response(request, error)
    response = error_response(
        request, InvalidArgument(str(exc.detail), reason=f"HTTP_{exc.status_code}")
    )
    response.status_code = exc.status_code
    response.headers.update(exc.headers or {})
    return response


class BodyLimit:
    """Refuses a request body over ``limit`` bytes (FORGELINE_MAX_MESSAGE_BYTES, the gRPC
    services' limit) with 413 before it is read into memory."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, send)
            return
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(scope, send)

    async def _refuse(self, scope: dict, send: Any) -> None:
        error = ResourceExhausted(
            f"the request body is over the limit of {self.limit:,} bytes "
            "(FORGELINE_MAX_MESSAGE_BYTES)",
            reason="BODY_TOO_LARGE",
        )
        openai = str(scope.get("path", "")).startswith(OPENAI_PREFIXES)
        response = JSONResponse(openai_body(error) if openai else rest_body(error), 413)
        await response(scope, None, send)


class _TooLarge(Exception):
    pass


# --- REST for classifiers -------------------------------------------------------------------------

rest_router = APIRouter(tags=["classifiers"])


class PredictBody(BaseModel):
    """Texts for one classifier deployment, answered in one batch."""

    model_config = ConfigDict(extra="forbid")

    texts: list[str] = Field(min_length=1, description="The texts to classify, in order.")
    adapter: str = Field("", description="One of the deployment's adapters; empty: its default.")


def prediction_json(prediction: pb.ServedPrediction) -> dict[str, Any]:
    return MessageToDict(prediction, preserving_proto_field_name=True)


@rest_router.post("/v1/deployments/{name}:predict")
async def predict(name: str, body: PredictBody, request: Request) -> JSONResponse:
    """Labels and probabilities for each text, with what the safety policy did. When the
    policy blocks any text the answer is 403, its error naming the first blocked text's rule
    and index; ``results`` still carries every text's outcome."""
    upstream: Upstream = request.app.state.upstream
    answer = await upstream.predict_batch(
        pb.PredictBatchRequest(deployment=name, texts=body.texts, adapter=body.adapter),
        caller_token(request),
    )
    results: list[dict[str, Any]] = []
    first_error: tuple[int, ForgelineError] | None = None
    for index, result in enumerate(answer.results):
        item: dict[str, Any] = {"prediction": prediction_json(result.prediction)}
        if result.status.code:
            error = from_status(result.status)
            item["error"] = rest_body(error)["error"]
            first_error = first_error or (index, error)
        results.append(item)
    if first_error is None:
        return JSONResponse({"deployment": name, "results": results})
    index, error = first_error
    body_out = rest_body(error)
    body_out["error"]["index"] = index
    return JSONResponse(
        {**body_out, "deployment": name, "results": results}, status_code=http_status(error)
    )
