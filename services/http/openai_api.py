"""The OpenAI-compatible routes: /v1/models, /v1/chat/completions and /v1/completions, as the
official client and the API reference expect them (vLLM's server is the model).

Deployments are the models; ``deployment:adapter`` chooses one of a deployment's adapters.
Parameters map onto the serving service's DecodingOptions:

- ``temperature`` > 0 (or ``top_p`` without a temperature) samples, with ``top_p`` and
  ``seed``; ``temperature`` 0 or unset decodes greedily (unlike OpenAI's default of 1: the
  same request gives the same answer), and ``seed``/``top_p`` then change nothing.
- ``max_tokens`` / ``max_completion_tokens`` -> max new tokens; ``stop`` -> stop strings.
- ``repetition_penalty`` (an extension, as vLLM takes it; ``extra_body`` in the client) ->
  CTRL's multiplicative penalty. ``frequency_penalty`` and ``presence_penalty`` are additive
  penalties the service does not implement: a non-zero one is refused (400 naming it), as are
  ``n`` > 1, ``logprobs``, tools, ``echo``, ``suffix`` and ``best_of`` > 1.

A streamed answer is server-sent events: ``data: {chunk}`` per piece of text, the last chunk
with ``finish_reason``, then ``data: [DONE]``. A stream the output rules block ends with
finish_reason "content_filter" and ``safety_block`` naming the rule (the text already sent
is withdrawn). Errors take OpenAI's body shape; a safety block is 403.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from forgeline.errors import FieldViolation, ForgelineError, InvalidArgument
from forgeline.services.http.app import caller_token
from forgeline.services.http.errors import openai_body
from forgeline.services.http.upstream import Stream, Upstream
from forgeline.v1 import serving_service_pb2 as pb
from forgeline.v1 import training_service_pb2 as tpb

router = APIRouter(tags=["openai"])
ADAPTER_SEPARATOR = ":"
FINISH_REASONS = {"safety": "content_filter"}  # the service's words -> OpenAI's
# The serving service's field -> the OpenAI parameter a client set (the longest prefix wins).
PARAMS = {
    "decoding.max_new_tokens": "max_tokens",
    "decoding.temperature": "temperature",
    "decoding.top_p": "top_p",
    "decoding.seed": "seed",
    "decoding.stop": "stop",
    "decoding.repetition_penalty": "repetition_penalty",
    "deployment": "model",
    "adapter": "model",
}
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


# --- requests -----------------------------------------------------------------------------------


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")  # name, tool_call_id...: nothing to render

    role: str = Field(description="system, developer, user or assistant.")
    content: str | list[TextPart] | None = Field(description="Text, or text parts.")

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    include_usage: bool = False


class Sampling(BaseModel):
    """What chat and completions requests share."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="A deployment's name, or deployment:adapter.")
    max_tokens: int | None = Field(None, ge=1, description="New tokens at most.")
    temperature: float | None = Field(None, ge=0, le=2, description="0 or unset: greedy.")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus mass (sampling).")
    seed: int | None = Field(None, description="Sampling seed.")
    stop: str | list[str] | None = Field(None, description="Stop strings (at most 4).")
    frequency_penalty: float | None = Field(None, ge=-2, le=2, description="Only 0.")
    presence_penalty: float | None = Field(None, ge=-2, le=2, description="Only 0.")
    repetition_penalty: float | None = Field(
        None, gt=0, le=10, description="CTRL's multiplicative penalty (an extension; 1: none)."
    )
    n: int | None = Field(None, ge=1, description="Only 1.")
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: Any = Field(None, description="Not supported.")
    logit_bias: dict[str, float] | None = Field(None, description="Not supported.")
    user: str | None = Field(None, description="Accepted, not used.")

    def refuse_unsupported(self) -> None:
        problems = []
        for name in ("frequency_penalty", "presence_penalty"):
            if getattr(self, name):
                problems.append(
                    (name, "additive penalties are not supported: leave it 0, or use "
                     "repetition_penalty (multiplicative)")
                )  # fmt: skip
        if self.n not in (None, 1):
            problems.append(("n", "one choice per request: leave n at 1"))
        if self.logprobs not in (None, False):
            problems.append(("logprobs", "log probabilities are not returned"))
        if self.logit_bias:
            problems.append(("logit_bias", "logit bias is not supported"))
        problems.extend(self.more_unsupported())
        if problems:
            raise InvalidArgument(
                "; ".join(f"{n}: {w}" for n, w in problems),
                violations=[FieldViolation(n, w) for n, w in problems],
                reason="UNSUPPORTED_PARAMETER",
            )

    def more_unsupported(self) -> list[tuple[str, str]]:
        return []

    def new_tokens(self) -> int:
        return self.max_tokens or 0

    def decoding(self) -> tpb.DecodingOptions:
        options = tpb.DecodingOptions(max_new_tokens=self.new_tokens())
        if isinstance(self.stop, str):
            options.stop.append(self.stop)
        elif self.stop:
            options.stop.extend(self.stop)
        if self.repetition_penalty is not None:
            options.repetition_penalty = self.repetition_penalty
        sample = (self.temperature or 0) > 0 or (self.temperature is None and self.top_p)
        if sample:
            options.strategy = tpb.DECODING_STRATEGY_SAMPLE
            if self.temperature is not None:
                options.temperature = self.temperature
            if self.top_p is not None:
                options.top_p = self.top_p
            if self.seed is not None:
                options.seed = self.seed
        return options

    def target(self) -> tuple[str, str]:
        """(deployment, adapter) the model name chooses."""
        deployment, _, adapter = self.model.partition(ADAPTER_SEPARATOR)
        return deployment, adapter


class ChatCompletionRequest(Sampling):
    messages: list[ChatMessage] = Field(min_length=1, description="The chat so far.")
    max_completion_tokens: int | None = Field(None, ge=1, description="New tokens at most.")
    tools: list[Any] | None = Field(None, description="Not supported.")
    tool_choice: Any = Field(None, description="Not supported.")
    response_format: dict[str, Any] | None = Field(None, description="Only {'type': 'text'}.")
    top_logprobs: int | None = Field(None, description="Not supported.")

    def more_unsupported(self) -> list[tuple[str, str]]:
        problems = []
        if self.tools or self.tool_choice not in (None, "none"):
            problems.append(("tools", "tool calls are not supported"))
        if self.response_format and self.response_format.get("type") != "text":
            problems.append(("response_format", "only {'type': 'text'} is supported"))
        if self.top_logprobs:
            problems.append(("top_logprobs", "log probabilities are not returned"))
        return problems

    def new_tokens(self) -> int:
        return self.max_completion_tokens or self.max_tokens or 0


class CompletionRequest(Sampling):
    prompt: str | list[str] = Field(description="The text to continue (one prompt).")
    echo: bool | None = Field(None, description="Not supported.")
    suffix: str | None = Field(None, description="Not supported.")
    best_of: int | None = Field(None, ge=1, description="Only 1.")

    def more_unsupported(self) -> list[tuple[str, str]]:
        problems = []
        if isinstance(self.prompt, list) and len(self.prompt) != 1:
            problems.append(("prompt", "one prompt per request"))
        if self.echo:
            problems.append(("echo", "echoing the prompt is not supported"))
        if self.suffix:
            problems.append(("suffix", "insertion (suffix) is not supported"))
        if self.best_of not in (None, 1):
            problems.append(("best_of", "one candidate per request: leave best_of at 1"))
        return problems

    def text(self) -> str:
        return self.prompt[0] if isinstance(self.prompt, list) else self.prompt


# --- routes -------------------------------------------------------------------------------------


@router.get("/v1/models")
async def list_models(request: Request) -> JSONResponse:
    """Every deployment, and each of its adapters as deployment:adapter."""
    upstream: Upstream = request.app.state.upstream
    found = await upstream.deployments(caller_token(request))
    models = []
    for d in found:
        created = d.create_time.seconds
        names = [d.name, *(f"{d.name}{ADAPTER_SEPARATOR}{a}" for a in sorted(d.adapters))]
        models += [
            {
                "id": n,
                "object": "model",
                "created": created,
                "owned_by": "forgeline",
                "task": d.task,
            }
            for n in names
        ]
    return JSONResponse({"object": "list", "data": models})


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
    """A chat answered by a generative deployment, with its chat template."""
    body.refuse_unsupported()
    deployment, adapter = body.target()
    fields = dict(
        deployment=deployment,
        adapter=adapter,
        messages=[pb.ChatTurn(role=m.role, content=m.text()) for m in body.messages],
        decoding=body.decoding(),
    )
    return await _answer(request, body, fields, _Chat(body.model))


@router.post("/v1/completions")
async def completions(body: CompletionRequest, request: Request) -> Any:
    """A raw prompt continued by a generative deployment."""
    body.refuse_unsupported()
    deployment, adapter = body.target()
    fields = dict(
        deployment=deployment, adapter=adapter, prompt=body.text(), decoding=body.decoding()
    )
    return await _answer(request, body, fields, _Text(body.model))


# --- answers ------------------------------------------------------------------------------------


class _Shape:
    """One object kind's JSON (chat or text completion)."""

    prefix = "cmpl"

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = f"{self.prefix}-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def envelope(self, kind: str, choices: list[dict], **more: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **more,
        }

    def whole(self, text: str, finish_reason: str, usage: dict) -> dict[str, Any]:
        raise NotImplementedError

    def opening(self) -> dict[str, Any] | None:
        return None

    def piece(self, text: str, finish_reason: str | None) -> dict[str, Any]:
        raise NotImplementedError


class _Chat(_Shape):
    prefix = "chatcmpl"

    def whole(self, text: str, finish_reason: str, usage: dict) -> dict[str, Any]:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish_reason,
            "logprobs": None,
        }
        return self.envelope("chat.completion", [choice], usage=usage)

    def opening(self) -> dict[str, Any]:
        return self._chunk({"role": "assistant", "content": ""}, None)

    def piece(self, text: str, finish_reason: str | None) -> dict[str, Any]:
        return self._chunk({"content": text} if text else {}, finish_reason)

    def _chunk(self, delta: dict, finish_reason: str | None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return self.envelope("chat.completion.chunk", [choice])


class _Text(_Shape):
    def whole(self, text: str, finish_reason: str, usage: dict) -> dict[str, Any]:
        choice = {"index": 0, "text": text, "finish_reason": finish_reason, "logprobs": None}
        return self.envelope("text_completion", [choice], usage=usage)

    def piece(self, text: str, finish_reason: str | None) -> dict[str, Any]:
        choice = {"index": 0, "text": text, "finish_reason": finish_reason, "logprobs": None}
        return self.envelope("text_completion", [choice])


def _usage(u: pb.GenerationUsage) -> dict[str, int]:
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    }


def _finish(reason: str) -> str:
    return FINISH_REASONS.get(reason, reason)


def _as_openai(error: ForgelineError) -> ForgelineError:
    """The service's field names turned into the parameters the client set."""
    error.violations = [FieldViolation(_param(v.field), v.description) for v in error.violations]
    if "field" in error.metadata:
        error.metadata["field"] = _param(error.metadata["field"])
    elif error.reason == "DEPLOYMENT_NOT_FOUND":
        error.metadata["field"] = "model"
    return error


def _param(field: str) -> str:
    for prefix in sorted(PARAMS, key=len, reverse=True):
        if field.startswith(prefix):
            return PARAMS[prefix]
    return field


async def _answer(request: Request, body: Sampling, fields: dict, shape: _Shape) -> Any:
    upstream: Upstream = request.app.state.upstream
    token = caller_token(request)
    try:
        if not body.stream:
            answer = await upstream.generate(pb.GenerateRequest(**fields), token)
            return JSONResponse(
                shape.whole(answer.text, _finish(answer.finish_reason), _usage(answer.usage))
            )
        messages = upstream.generate_stream(pb.GenerateStreamRequest(**fields), token)
        # The first message is awaited here, so a refusal (no such deployment, a blocked
        # prompt, too many streams) is an HTTP status, not an event in a 200 stream.
        try:
            first = await messages.next()
        except BaseException:
            messages.close()
            raise
    except ForgelineError as exc:
        raise _as_openai(exc) from None
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return StreamingResponse(
        _events(messages, first, shape, include_usage),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


def _sse(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


async def _events(
    messages: Stream,
    first: pb.GenerateStreamResponse | None,
    shape: _Shape,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    """The stream as OpenAI sends it. Closing ``messages`` when this ends, the client gone
    included, cancels the gRPC call, which stops the generation."""
    try:
        if (opening := shape.opening()) is not None:
            yield _sse(opening)
        message = first
        while message is not None:
            if not message.finish_reason:
                if message.text:
                    yield _sse(shape.piece(message.text, None))
            else:
                last = shape.piece("", _finish(message.finish_reason))
                if message.HasField("block"):
                    b = message.block
                    last["safety_block"] = {
                        "rule": b.rule,
                        "message": b.message,
                        "audit_event": b.audit_event,
                        "withdrawn": b.withdrawn,
                    }
                yield _sse(last)
                if include_usage:
                    yield _sse(shape.envelope(last["object"], [], usage=_usage(message.usage)))
                yield _sse("[DONE]")
                return
            message = await messages.next()
    except ForgelineError as exc:  # after the 200 went out: an error event, as OpenAI sends
        yield _sse(openai_body(_as_openai(exc)))
    finally:
        messages.close()
