"""The serving service's generation run in process on a tiny llama: pieces handed out as tokens
come, stop strings never half-sent, output rules judging every piece before it leaves,
cancellation, limits; and the decoding options' proto conversion."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from forgeline.convert import decoding_values
from forgeline.errors import InvalidArgument
from forgeline.generation import decoding_options
from forgeline.policy import Verdict
from forgeline.services.serving.generate import (
    CANCELLED,
    LENGTH,
    SAFETY,
    STOP,
    Finished,
    GenerateInput,
    GenerationRun,
    GenerativeModel,
    OutputCheck,
    Piece,
    _held_back,
)
from forgeline.v1 import training_service_pb2 as tpb
from tests.tiny_llm import tiny_llama_folder


@dataclass(frozen=True)
class Plan:
    model_id: str = "mdl_tiny"
    window: int = 128
    default_adapter: str = ""


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> GenerativeModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder: Path = tiny_llama_folder(tmp_path_factory.mktemp("llama") / "llama")
    return GenerativeModel(
        Plan(),
        AutoTokenizer.from_pretrained(folder),
        AutoModelForCausalLM.from_pretrained(folder),
        adapters=False,
    )


def run(model, prompt="w1 w2 w3", check=None, every=1, **decoding):
    events: list = []
    options = model.options(decoding, cap=100)
    guard = OutputCheck(check, lambda text, verdict: ("refused", text)) if check else None
    generation = GenerationRun(
        model, model.tokenizer(prompt)["input_ids"], options, "", guard, every, events.append
    )
    return generation, events, generation.run()


def text_of(events) -> str:
    return "".join(e.text for e in events if isinstance(e, Piece))


def test_pieces_come_token_by_token_and_add_up_to_the_output(model):
    _, events, last = run(model, max_new_tokens=10)
    assert isinstance(last, Finished) and last.finish_reason == LENGTH
    assert len(events) == 10 and text_of(events) == last.output
    assert (last.prompt_tokens, last.completion_tokens) == (3, 10)


def test_a_stop_string_is_never_half_sent(model):
    words = run(model, max_new_tokens=10)[2].output.split()
    # A two-word stop string: its first word is held back until the next token says whether
    # the stop string is complete (it would be withdrawn-by-cut otherwise).
    _, events, last = run(model, max_new_tokens=10, stop=[f"{words[2]} {words[3]}"])
    assert last.finish_reason == STOP and last.completion_tokens == 4
    assert text_of(events) == last.output == " ".join(words[:2]) + " "


def test_output_rules_judge_each_piece_before_it_leaves(model):
    words = run(model, max_new_tokens=10)[2].output.split()
    judged: list[str] = []

    def check(text: str) -> Verdict:
        judged.append(text)
        if words[2] in text.split():
            return Verdict("block", "", blocked_by="rule", message="no")
        return Verdict("allow", text)

    generation, events, last = run(model, check=check, max_new_tokens=10)
    assert last.finish_reason == SAFETY and last.output == "" and last.blocked.blocked_by == "rule"
    assert last.refusal == ("refused", " ".join(words[:3]))  # recorded once, with its text
    assert text_of(events).split() == words[:2] and last.completion_tokens == 3
    assert judged == [" ".join(words[:n]) for n in (1, 2, 3)]
    # every 0 (unary): only the whole output is judged, once
    judged.clear()
    *_, whole = run(model, check=lambda t: judged.append(t) or Verdict("allow", t), every=0)
    assert judged == [whole.output]


def test_a_cancelled_run_stops_at_the_next_token(model):
    events: list = []
    options = model.options({"max_new_tokens": 100}, cap=100)
    generation = GenerationRun(model, [4, 5], options, "", None, 1, events.append)
    generation.cancel()
    last = generation.run()
    assert last.finish_reason == CANCELLED and last.completion_tokens <= 1


def test_limits_name_their_field(model):
    with pytest.raises(InvalidArgument) as cap:
        model.options({"max_new_tokens": 101}, cap=100)
    assert cap.value.violations[0].field == "decoding.max_new_tokens"
    assert model.options({}, cap=10).max_new_tokens == 10  # the default fits the cap
    options = model.options({"max_new_tokens": 30}, cap=100)
    request = GenerateInput(prompt="w1 " * 100)
    ids = model.encode(request, request.texts).ids
    with pytest.raises(InvalidArgument) as window:
        model.check_window(ids, options, request.input_field)
    assert "100 tokens" in str(window.value) and "128 tokens" in str(window.value)
    chat = GenerateInput(messages=(("user", "w1"),))
    rendered = model.tokenizer("user: w1\n", add_special_tokens=False)["input_ids"]
    assert model.encode(chat, chat.texts).ids == rendered  # the tiny template: "role: content\n"


def test_held_back_text():
    assert _held_back("abc", []) == 0
    assert _held_back("abc w4", ["w46"]) == 2
    assert _held_back("abc w", ["w46", "xyz"]) == 1
    assert _held_back("abc\ufffd", []) == 1


def test_decoding_values_from_the_proto():
    sample = tpb.DecodingOptions(
        strategy=tpb.DECODING_STRATEGY_SAMPLE, temperature=0.7, seed=3, stop=["."]
    )
    assert decoding_values(sample, "decoding") == {
        "strategy": "sample",
        "temperature": pytest.approx(0.7),
        "seed": 3,
        "stop": ["."],
    }
    assert decoding_values(tpb.DecodingOptions(), "decoding") == {"strategy": "greedy"}
    with pytest.raises(InvalidArgument) as zero:
        decoding_options(decoding_values(tpb.DecodingOptions(top_p=0), "d"), "decoding")
    assert zero.value.violations[0].field == "decoding.top_p"
    with pytest.raises(InvalidArgument) as unknown:
        decoding_values(tpb.DecodingOptions(strategy=9), "decoding")
    assert unknown.value.violations[0].field == "decoding.strategy"


def test_loading_runs_in_a_thread_that_ends_with_it():
    """in_passing_thread: the work's value or its error, from a thread gone once it returns
    (so no OpenMP pool of torch's outlives a model's load and warm-up)."""
    import threading

    from forgeline.services.serving.deployments import in_passing_thread

    seen = []

    def work():
        seen.append(threading.current_thread())
        return 42

    assert in_passing_thread(work, "load-x") == 42
    assert seen[0] is not threading.current_thread() and not seen[0].is_alive()
    assert seen[0].name == "load-x"

    def broken():
        raise KeyboardInterrupt  # a BaseException too reaches the caller

    with pytest.raises(KeyboardInterrupt):
        in_passing_thread(broken, "load-y")
