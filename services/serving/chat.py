"""`forgeline generate` and `forgeline chat`: top-level commands for a language-model deployment.

`forgeline generate` is `forgeline deploy generate` itself (one command, two names). `forgeline
chat` keeps a conversation as chat turns and sends all of it with each new line, so the model sees
what was said before; every answer streams through the serving service's GenerateStream.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from forgeline.cli.app import AddressOpt, client, err
from forgeline.services.serving.commands import (
    AdapterOpt,
    MaxNewTokensOpt,
    NameArg,
    SeedOpt,
    StopOpt,
    TemperatureOpt,
    decoding_options,
    deploy_generate,
    report_end,
    stream_answer,
)

EXIT = "/exit"


def register(root: typer.Typer) -> None:
    root.command("generate")(deploy_generate)
    root.command("chat")(chat)


def chat(
    name: NameArg,
    system: Annotated[str, typer.Option(help="A system turn the conversation starts with.")] = "",
    max_new_tokens: MaxNewTokensOpt = 0,
    temperature: TemperatureOpt = None,
    seed: SeedOpt = 0,
    stop: StopOpt = None,
    adapter: AdapterOpt = "",
    address: AddressOpt = None,
) -> None:
    """Chat with a language-model deployment: each line read from stdin is the user's turn, the
    answer streams back; `/exit` or end of input ends it. Works with piped input."""
    from forgeline.v1 import serving_service_pb2 as pb

    turns: list[Any] = [pb.ChatTurn(role="system", content=system)] if system else []
    decoding = decoding_options(max_new_tokens, temperature, seed, stop)
    interactive = sys.stdin.isatty()
    with client(address, "serving") as service:
        while True:
            if interactive:
                err.print("[bold]> [/bold]", end="")
            line = sys.stdin.readline()
            if not line or line.strip() == EXIT:
                return
            text = line.rstrip("\n")
            if not text.strip():
                continue
            asked = [*turns, pb.ChatTurn(role="user", content=text)]
            fields = {
                "deployment": name,
                "messages": asked,
                "decoding": decoding,
                "adapter": adapter,
            }
            last = stream_answer(service, fields)
            if not report_end(last):
                continue  # a blocked answer is withdrawn: neither turn stays in the conversation
            answer = last.output if last is not None else ""
            turns = [*asked, pb.ChatTurn(role="assistant", content=answer)]
