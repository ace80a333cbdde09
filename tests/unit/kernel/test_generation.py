"""forgeline.generation: decoding options checked naming the field, batched generation equal to
one-at-a-time generation (left padding), seeded sampling, stop strings, token counts, chat
templates; on tiny gpt2 / llama / t5 models built from config."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgeline.errors import InvalidArgument
from forgeline.finetune.build import build_from_config
from forgeline.generation import (
    DecodingOptions,
    cut_at_stop,
    decoding_options,
    generate_texts,
    render_chat,
    score_texts,
)
from forgeline.registry import PluginRegistry
from tests.tiny_llm import tiny_t5

TEXTS = [
    "the court held that the appeal fails and is dismissed with costs",
    "a cat sat on the mat and looked at the door",
    "the judgment of the high court is set aside",
] * 4
# Lengths differ, so a batch pads every prompt but the longest.
PROMPTS = ["the court held that the appeal", "a cat", "the judgment of the high court is", "the"]


@pytest.fixture(scope="module")
def tokenizer_folder(tmp_path_factory) -> Path:
    import torch

    torch.manual_seed(0)  # the same random model every run
    return build_from_config(
        "gpt2",
        {"n_layer": 1, "n_embd": 16, "n_head": 2},
        TEXTS,
        300,
        tmp_path_factory.mktemp("gen") / "gpt2",
    )


@pytest.fixture(scope="module")
def gpt2(tokenizer_folder):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (
        AutoModelForCausalLM.from_pretrained(tokenizer_folder).eval(),
        AutoTokenizer.from_pretrained(tokenizer_folder),
    )


@pytest.fixture(scope="module")
def llama(gpt2):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    _, tokenizer = gpt2
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    return LlamaForCausalLM(config).eval(), tokenizer


@pytest.mark.parametrize("which", ["gpt2", "llama"])
def test_batched_greedy_equals_one_at_a_time(which, request):
    model, tokenizer = request.getfixturevalue(which)
    options = DecodingOptions(max_new_tokens=6)
    batched = generate_texts(model, tokenizer, PROMPTS, options, batch_size=4)
    alone = [generate_texts(model, tokenizer, [p], options, batch_size=1)[0] for p in PROMPTS]
    assert batched == alone
    counts = [len(tokenizer(p)["input_ids"]) for p in PROMPTS]
    assert [g.prompt_tokens for g in batched] == counts
    for g in batched:
        assert 0 <= g.completion_tokens <= 6
        assert g.finish_reason in ("stop", "length")
        if g.finish_reason == "length":
            assert g.completion_tokens == 6


def test_right_padding_would_change_a_decoder_only_output(gpt2):
    """Why the left padding matters: the same prompt right-padded in a batch continues from
    pad tokens (gpt2's absolute positions make the difference visible)."""
    import torch

    model, tokenizer = gpt2
    pad = tokenizer.eos_token_id
    short, long = tokenizer("the")["input_ids"], tokenizer(PROMPTS[0])["input_ids"]
    ids = torch.tensor([short + [pad] * (len(long) - len(short)), long])
    mask = torch.tensor([[1] * len(short) + [0] * (len(long) - len(short)), [1] * len(long)])
    right = model.generate(
        input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=pad
    )
    right_text = tokenizer.decode(right[0, len(long) :], skip_special_tokens=True)
    (left,) = generate_texts(model, tokenizer, ["the"], DecodingOptions(max_new_tokens=6))
    assert right_text != left.text


def test_seeded_sampling_is_reproducible(gpt2):
    model, tokenizer = gpt2
    options = DecodingOptions(strategy="sample", seed=7, temperature=1.5, max_new_tokens=8)
    first = generate_texts(model, tokenizer, PROMPTS, options, batch_size=2)
    assert generate_texts(model, tokenizer, PROMPTS, options, batch_size=2) == first
    others = [
        generate_texts(model, tokenizer, PROMPTS, options.model_copy(update={"seed": s}), 2)
        for s in range(1, 4)
    ]
    assert any(o != first for o in others)  # the seed is used, not ignored


def test_beam_search_runs_and_counts(llama):
    model, tokenizer = llama
    out = generate_texts(
        model, tokenizer, PROMPTS, DecodingOptions(strategy="beam", num_beams=3, max_new_tokens=5)
    )
    assert len(out) == len(PROMPTS)
    assert all(g.completion_tokens <= 5 for g in out)


def test_stop_strings_cut_the_output(gpt2):
    model, tokenizer = gpt2
    free = generate_texts(model, tokenizer, PROMPTS, DecodingOptions(max_new_tokens=12))
    # A stop string taken from inside an unconstrained output: the stopped output is its prefix.
    # ASCII only: a random byte-level model also emits partial UTF-8 bytes, which decode to
    # U+FFFD or not depending on what follows them.
    stop = next(
        g.text[i : i + 2]
        for g in free
        for i in range(1, len(g.text) - 1)
        if g.text[i : i + 2].isascii() and g.text[i : i + 2].isalpha()
    )
    stopped = generate_texts(
        model, tokenizer, PROMPTS, DecodingOptions(max_new_tokens=12, stop=[stop])
    )
    for before, after in zip(free, stopped, strict=True):
        assert stop not in after.text
        assert before.text.startswith(after.text)
        if stop in before.text:
            assert after.text == before.text[: before.text.index(stop)]
            assert after.finish_reason == "stop"
    assert cut_at_stop("abcXdefY", ["Y", "X"]) == ("abc", True)
    assert cut_at_stop("abc", ["Z"]) == ("abc", False)


def test_max_input_tokens_keeps_the_end_of_a_decoder_prompt(gpt2):
    model, tokenizer = gpt2
    options = DecodingOptions(max_new_tokens=4)
    ids = tokenizer(PROMPTS[0])["input_ids"]
    (cut,) = generate_texts(model, tokenizer, [PROMPTS[0]], options, max_input_tokens=3)
    (tail,) = generate_texts(model, tokenizer, [tokenizer.decode(ids[-3:])], options)
    assert cut.truncated and cut.prompt_tokens == 3
    assert cut.text == tail.text


def test_encoder_decoder_is_padded_on_the_right(gpt2):

    _, tokenizer = gpt2
    model = tiny_t5(tokenizer)
    options = DecodingOptions(max_new_tokens=5)
    batched = generate_texts(model, tokenizer, PROMPTS, options, batch_size=4)
    alone = [generate_texts(model, tokenizer, [p], options)[0] for p in PROMPTS]
    assert batched == alone


def test_render_chat_applies_the_template_when_there_is_one(gpt2):
    _, tokenizer = gpt2
    assert render_chat(tokenizer, "hello") == "hello"  # no template: the prompt as is
    tokenizer = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    tokenizer.chat_template = (
        "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    assert render_chat(tokenizer, "hello") == "<user>hello<assistant>"


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ({"strategy": "sample", "temperature": 0}, "g.temperature", "greater than 0"),
        ({"max_new_tokens": 0}, "g.max_new_tokens", "greater than or equal to 1"),
        ({"max_new_tokens": 100_000}, "g.max_new_tokens", "less than or equal to 4096"),
        ({"strategy": "greedy", "temperature": 0.5}, "g.temperature", "strategy 'sample'"),
        ({"strategy": "sample", "num_beams": 3}, "g.num_beams", "strategy 'beam'"),
        ({"strategy": "nucleus"}, "g.strategy", "greedy"),
        ({"top_p": 1.5, "strategy": "sample"}, "g.top_p", "less than or equal to 1"),
        ({"repetition_penalty": -1}, "g.repetition_penalty", "greater than 0"),
        ({"stop": [""]}, "g.stop", "1..200 characters"),
        ({"beams": 2}, "g.beams", "Extra inputs"),
    ],
)
def test_bad_decoding_options_are_refused_naming_the_field(values, field, words):
    with pytest.raises(InvalidArgument) as caught:
        decoding_options(values, "g")
    assert [v.field for v in caught.value.violations] == [field]
    assert words in caught.value.message


def test_defaults_of_another_strategy_are_accepted():
    options = decoding_options({"strategy": "greedy", "temperature": 1.0}, "g")
    assert options.strategy == "greedy" and options.max_new_tokens == 64


def test_score_texts_prefixes_each_metric_by_its_plugin():
    registry = PluginRegistry()
    metrics = [
        registry.create("generation_metrics", "rouge", {}, "m"),
        registry.create("generation_metrics", "exact_match", {}, "m"),
    ]
    scores = score_texts(metrics, ["the cat sat", "a dog"], ["the cat sat", "a cat"])
    assert scores["rouge_rouge1"] == pytest.approx((1.0 + 0.5) / 2)
    assert scores["exact_match_exact_match"] == pytest.approx(0.5)
