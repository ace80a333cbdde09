"""The decode loop (forgeline.services.serving.continuous) on a tiny random-init llama, against
transformers' own generate one prompt at a time: rows that join a running batch at different
passes, leave it at different lengths and decode with different options give exactly
generate's tokens; a cancelled row leaves at once; a failing pass fails its rows and the loop
goes on."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from forgeline.generation import decoding_options, generate_texts
from forgeline.services.serving.continuous import DecodeLoop, continuous_batching
from forgeline.services.serving.generate import (
    CANCELLED,
    LENGTH,
    Failed,
    Finished,
    GenerationRun,
    GenerativeModel,
)
from tests.tiny_llm import tiny_llama_folder


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> GenerativeModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_llama_folder(tmp_path_factory.mktemp("loop") / "llama")
    plan = SimpleNamespace(window=2048, model_id="tiny", default_adapter="")
    return GenerativeModel(
        plan,
        AutoTokenizer.from_pretrained(folder),
        AutoModelForCausalLM.from_pretrained(folder),
        adapters=False,
    )


class Collected:
    """One request's events, and a latch set when its last one came."""

    def __init__(self) -> None:
        self.last: Finished | Failed | None = None
        self.ended = threading.Event()

    def done(self, last) -> None:
        self.last = last
        self.ended.set()


def start(loop: DecodeLoop, model: GenerativeModel, prompt: str, **decoding) -> Collected:
    options = decoding_options(decoding, "decoding")
    ids = model.tokenizer(prompt)["input_ids"]
    run = GenerationRun(model, ids, options, "", None, 0, lambda event: None)
    found = Collected()
    loop.join(run, found.done)
    found.run = run
    return found


def reference(model: GenerativeModel, prompt: str, **decoding) -> str:
    options = decoding_options(decoding, "decoding")
    (generated,) = generate_texts(model.model, model.tokenizer, [prompt], options, batch_size=1)
    return generated.text


PROMPTS = ["w1 w2 w3", "w4", "w5 w6 w7 w8 w9 w10 w11", "w12 w13", "w14 w15 w16 w17"]
OPTIONS = [
    {"max_new_tokens": 40},
    {"max_new_tokens": 7, "repetition_penalty": 1.4},
    {"max_new_tokens": 25},
    {"max_new_tokens": 33, "repetition_penalty": 1.2},
    {"max_new_tokens": 3},
]


def test_the_loop_serves_a_decoder_only_model(model):
    assert continuous_batching(model)


def test_rows_joining_and_leaving_at_different_passes_get_generates_tokens(model):
    loop = DecodeLoop(model, "tiny", max_rows=3)  # the last two wait for room
    started = [start(loop, model, p, **o) for p, o in zip(PROMPTS, OPTIONS, strict=True)]
    for found in started:
        assert found.ended.wait(60)
    for found, prompt, options in zip(started, PROMPTS, OPTIONS, strict=True):
        assert isinstance(found.last, Finished), found.last
        assert found.last.output == reference(model, prompt, **options)
    # Passes carried several rows, and no row was stepped past its end: one row per token.
    produced = sum(len(f.run.tokens) + (f.last.finish_reason == "stop") for f in started)
    assert loop.stats.rows == produced
    assert loop.stats.passes < produced
    # Nothing left to generate: the loop's thread is gone.
    deadline = threading.Event()
    for _ in range(500):
        if not any(t.name == "decode-tiny" for t in threading.enumerate()):
            break
        deadline.wait(0.01)
    assert not any(t.name == "decode-tiny" for t in threading.enumerate())


def test_a_seeded_sample_does_not_depend_on_its_company(model):
    sampled = {"strategy": "sample", "seed": 5, "temperature": 1.5, "top_k": 20, "top_p": 0.9}
    alone = start(DecodeLoop(model, "a", 8), model, "w3 w4", max_new_tokens=20, **sampled)
    assert alone.ended.wait(60)
    loop = DecodeLoop(model, "b", 8)
    others = [start(loop, model, p, max_new_tokens=30) for p in PROMPTS[:3]]
    joined = start(loop, model, "w3 w4", max_new_tokens=20, **sampled)
    assert joined.ended.wait(60) and all(o.ended.wait(60) for o in others)
    assert joined.last.output == alone.last.output
    other = start(
        DecodeLoop(model, "c", 8),
        model,
        "w3 w4",
        max_new_tokens=20,
        seed=6,
        **{k: v for k, v in sampled.items() if k != "seed"},
    )
    assert other.ended.wait(60)
    assert other.last.output != alone.last.output


def test_a_cancelled_row_leaves_and_the_others_finish(model):
    loop = DecodeLoop(model, "cancel", 8)
    long = start(loop, model, "w1", max_new_tokens=2000)
    short = start(loop, model, "w2 w3", max_new_tokens=12)
    assert short.ended.wait(60)
    assert short.last.output == reference(model, "w2 w3", max_new_tokens=12)
    long.run.cancel()
    assert long.ended.wait(10)
    assert long.last.finish_reason in (CANCELLED, "stop")
    if long.last.finish_reason == CANCELLED:
        assert len(long.run.tokens) < 2000


def test_a_failing_pass_fails_its_rows_and_the_loop_goes_on(model, monkeypatch):
    loop = DecodeLoop(model, "fails", 8)
    real = loop._forward
    calls = {"n": 0}

    def once_broken(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("out of memory (simulated)")
        return real(*args)

    monkeypatch.setattr(loop, "_forward", once_broken)
    failed = start(loop, model, "w1 w2", max_new_tokens=10)
    assert failed.ended.wait(60)
    assert isinstance(failed.last, Failed) and "simulated" in str(failed.last.error)
    after = start(loop, model, "w1 w2", max_new_tokens=10)
    assert after.ended.wait(60)
    assert isinstance(after.last, Finished) and after.last.finish_reason in (LENGTH, "stop")
    assert after.last.output == reference(model, "w1 w2", max_new_tokens=10)


def test_a_closed_loop_refuses_new_rows(model):
    from forgeline.errors import Unavailable

    loop = DecodeLoop(model, "closed", 8)
    loop.close()
    with pytest.raises(Unavailable):
        start(loop, model, "w1", max_new_tokens=2)
