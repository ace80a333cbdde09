"""Long inputs in training (TrainModel.long_inputs): the prompt an instruction row trains on, or
the source a seq2seq row trains on, is the long_inputs plugin's output within the room its row
leaves (or input_token_budget); the rows it shortened are counted; and what cannot work (chunk's
several passes, a task without prompts, a messages column, budgets without room) is refused by
the planner before any work, naming the field."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("transformers")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from forgeline.artifacts import ArtifactStore, Lineage  # noqa: E402
from forgeline.contracts.long_inputs import token_counter  # noqa: E402
from forgeline.datasets import DatasetRef, DatasetRepository  # noqa: E402
from forgeline.errors import InvalidArgument  # noqa: E402
from forgeline.finetune.build import build_from_config, train_tokenizer  # noqa: E402
from forgeline.finetune.data import (  # noqa: E402
    IGNORE,
    encode_conversation,
    encode_generative,
    render_conversation,
)
from forgeline.finetune.planning import TrainPlanner  # noqa: E402
from forgeline.finetune.runner import recipe_config  # noqa: E402
from forgeline.finetune.spec import ModelChoice, TrainSpec, train_spec  # noqa: E402
from forgeline.paths import PathValidator  # noqa: E402
from forgeline.plugins.long_inputs.extract import Extract  # noqa: E402
from forgeline.plugins.long_inputs.truncate import Truncate  # noqa: E402
from forgeline.registry import PluginChoice, PluginRegistry  # noqa: E402
from forgeline.v1 import common_pb2  # noqa: E402
from forgeline.v1 import training_service_pb2 as pb  # noqa: E402

# A judgment in miniature: four sentences about the appeal, two that have nothing to do with it
# (TextRank ranks those last: they share no word with any other sentence), each longer than
# what the budget below leaves once two sentences about the appeal are in.
ON_TOPIC = [
    "The appellant was convicted of theft by the trial court.",
    "The high court upheld the conviction of the appellant for theft.",
    "The appellant appealed the conviction for theft to this court.",
    "This court holds that the conviction of the appellant for theft stands.",
]
OFF_TOPIC = [
    "Bananas grow in warm places near a sea, ripen in a few weeks, and are shipped green "
    "across oceans in cold ships to markets far away from any farm.",
    "Parrots talk loudly every morning, copy the words of people they hear often, and can "
    "live for many decades when kept with care in large and quiet rooms.",
]
DOCUMENT = " ".join(
    [ON_TOPIC[0], OFF_TOPIC[0], ON_TOPIC[1], OFF_TOPIC[1], ON_TOPIC[2], ON_TOPIC[3]]
)
SUMMARY = "The conviction for theft stands."
TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
TINY_LLAMA = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "max_position_embeddings": 128,
}
TINY_T5 = {"d_model": 32, "d_kv": 16, "d_ff": 64, "num_layers": 2, "num_heads": 2}


@pytest.fixture(scope="module")
def tokenizer():
    """A tiny llama-style tokenizer trained on the texts (as a model from config gets one)."""
    texts = [DOCUMENT, SUMMARY, "short question", "<|user|> <|assistant|> </s>"] * 4
    return train_tokenizer("llama", texts, 300)


@pytest.fixture()
def chat(tokenizer):
    tokenizer.chat_template = TEMPLATE
    yield tokenizer
    tokenizer.chat_template = None


def decoded(tokenizer, text: str) -> str:
    """``text`` as the tokenizer decodes it (lowercased, its pieces spaced as in any decode)."""
    return tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"])


def pair(prompt: str, response: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]


def rows_file(tmp_path: Path, **columns: list[str]) -> str:
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table(columns), path)
    return str(path)


def test_extract_gives_the_prompt_the_model_trains_on(chat, tmp_path):
    path = rows_file(tmp_path, prompt=[DOCUMENT, "short question"], response=[SUMMARY, "yes"])
    count = token_counter(chat)
    budget = count(f"{ON_TOPIC[1]}\n{ON_TOPIC[3]}") + 1  # room for two of the six sentences
    encoded = encode_generative(
        "instruction",
        path,
        {"prompt": "prompt", "response": "response"},
        chat,
        128,
        long_inputs=Extract(),
        input_token_budget=budget,
    )
    expected = Extract().shorten(DOCUMENT, budget, count)
    assert 0 < expected.kept_tokens <= budget < count(DOCUMENT)
    # The salient sentences were picked, in document order; the unrelated ones (1, 3) were not.
    kept = expected.details["kept_sentences"]
    assert len(kept) == 2 and set(kept) <= {0, 2, 4, 5} and kept == sorted(kept)
    # What the model reads is exactly the conversation with the plugin's output as its prompt
    # (the loss still covers the response only), and the short row is left whole.
    text, _ = render_conversation(chat, pair(expected.text, SUMMARY))
    first = encoded.examples[0]
    assert first["input_ids"] == chat(text, add_special_tokens=False)["input_ids"]
    assert first == encode_conversation(chat, pair(expected.text, SUMMARY), 128)[0]
    assert chat.decode([t for t in first["labels"] if t != IGNORE]).startswith(
        chat.decode(chat(SUMMARY, add_special_tokens=False)["input_ids"])
    )
    assert encoded.examples[1] == encode_conversation(chat, pair("short question", "yes"), 128)[0]
    read = chat.decode(first["input_ids"])
    for sentence in OFF_TOPIC:
        assert decoded(chat, sentence) not in read
    assert sum(decoded(chat, sentence) in read for sentence in ON_TOPIC) == 2
    assert encoded.shortened == 1 and encoded.truncated == 0


@pytest.mark.parametrize("template", [TEMPLATE, None], ids=["chat-template", "no-template"])
def test_by_default_a_prompt_keeps_the_room_its_response_leaves(tokenizer, tmp_path, template):
    tokenizer.chat_template = template
    try:
        long_prompt = " ".join([DOCUMENT] * 4)
        path = rows_file(
            tmp_path, prompt=[long_prompt, long_prompt, "short question"], response=[SUMMARY] * 3
        )
        columns = {"prompt": "prompt", "response": "response"}
        plain = encode_generative("instruction", path, columns, tokenizer, 48)
        encoded = encode_generative(
            "instruction", path, columns, tokenizer, 48, long_inputs=Truncate()
        )
    finally:
        tokenizer.chat_template = None
    # Without the plugin the truncation rule cuts the prompts from their start; with it, each
    # prompt is the head of the document, within the room its response leaves: nothing is cut
    # after, and the whole response is still learned.
    assert plain.truncated == 2 and plain.shortened == 0
    assert encoded.truncated == 0 and encoded.shortened == 2
    for example in encoded.examples:
        assert len(example["input_ids"]) <= 48
    summary_ids = tokenizer(SUMMARY, add_special_tokens=False)["input_ids"]
    learned = [t for t in encoded.examples[0]["labels"] if t != IGNORE]
    assert learned[: len(summary_ids)] == summary_ids
    kept = tokenizer.decode(encoded.examples[0]["input_ids"])
    assert decoded(tokenizer, ON_TOPIC[0]) in kept  # the head of the document
    assert decoded(tokenizer, ON_TOPIC[3]) not in kept


def test_a_seq2seq_source_is_shortened_to_the_encoder_length(tokenizer, tmp_path):
    path = rows_file(tmp_path, text=[" ".join([DOCUMENT] * 3), "short question"], target=["a", "b"])
    columns = {"text": "text", "target": "target"}
    encoded = encode_generative(
        "seq2seq", path, columns, tokenizer, 32, long_inputs=Truncate(), input_token_budget=0
    )
    head = Truncate().shorten(
        " ".join([DOCUMENT] * 3),
        32 - tokenizer.num_special_tokens_to_add(),
        token_counter(tokenizer),
    )
    assert encoded.examples[0]["input_ids"] == tokenizer(head.text)["input_ids"]
    assert len(encoded.examples[0]["input_ids"]) <= 32
    assert encoded.shortened == 1 and encoded.truncated == 0
    smaller = encode_generative(
        "seq2seq", path, columns, tokenizer, 32, long_inputs=Truncate(), input_token_budget=10
    )
    assert len(smaller.examples[0]["input_ids"]) == 10 + tokenizer.num_special_tokens_to_add()


# --- planning: refused before any work, naming the field ----------------------------------------


@pytest.fixture()
def planner(tmp_path):
    store = ArtifactStore(tmp_path / "artifacts")
    datasets = DatasetRepository(store)
    planner = TrainPlanner(PluginRegistry(), datasets, store, PathValidator([tmp_path]))

    def save(name: str, table: pa.Table) -> str:
        return datasets.save(
            table, name=name, text_column="", label_column="", lineage=Lineage()
        ).id

    planner.ids = {
        "pairs": save("pairs", pa.table({"prompt": [DOCUMENT] * 4, "response": [SUMMARY] * 4})),
        "texts": save("texts", pa.table({"text": [DOCUMENT] * 4, "target": [SUMMARY] * 4})),
        "chats": save("chats", pa.table({"messages": [pair(DOCUMENT, SUMMARY)] * 4})),
    }
    yield planner
    store.close()


def request(planner, dataset: str = "pairs", task: str = "instruction", **kwargs) -> TrainSpec:
    model = (
        ModelChoice(model_type="t5", config=TINY_T5, vocab_size=300)
        if task == "seq2seq"
        else ModelChoice(model_type="llama", config=TINY_LLAMA, vocab_size=300)
    )
    return TrainSpec(
        train=DatasetRef(
            dataset_id=planner.ids[dataset], text_column="text" if dataset == "texts" else ""
        ),
        model=model,
        task=task,
        batch_size=2,
        max_length=64,
        **kwargs,
    )


def refused(planner, spec: TrainSpec) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        planner.plan_train(spec)
    return caught.value


def fields(error: InvalidArgument) -> list[str]:
    return [v.field for v in error.violations]


def test_a_single_pass_strategy_is_planned_and_reaches_the_workers(planner, tmp_path):
    spec = request(
        planner,
        long_inputs=PluginChoice("extract", {"method": "centrality"}),
        input_token_budget=40,
    )
    plan = planner.plan_train(spec)
    assert plan.long_inputs.name == "extract" and plan.input_token_budget == 40
    config = recipe_config(plan, planner.artifacts, tmp_path / "model", tmp_path / "out")
    assert config.long_inputs == "extract" and config.input_token_budget == 40
    assert config.long_inputs_config["method"] == "centrality"
    # A budget alone shortens with truncate; nothing set leaves the truncation rule alone.
    assert planner.plan_train(request(planner, input_token_budget=20)).long_inputs.name == (
        "truncate"
    )
    assert planner.plan_train(request(planner)).long_inputs is None
    seq2seq = planner.plan_train(
        request(planner, "texts", "seq2seq", long_inputs=PluginChoice("truncate"))
    )
    assert seq2seq.long_inputs.name == "truncate"


def test_chunk_is_refused_for_training_with_its_reason(planner):
    error = refused(planner, request(planner, long_inputs=PluginChoice("chunk")))
    assert fields(error) == ["long_inputs.name"]
    assert "several passes" in error.message and "extract" in error.message


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"long_inputs": PluginChoice("nope")}, "long_inputs.name", "nope"),
        (
            {"long_inputs": PluginChoice("truncate", {"keep": "middle"})},
            "long_inputs.config.keep",
            "keep",
        ),
        ({"input_token_budget": -1}, "input_token_budget", ">= 0"),
        ({"input_token_budget": 64}, "input_token_budget", "no room for the response"),
    ],
    ids=["unknown-plugin", "bad-config", "negative-budget", "budget-without-room"],
)
def test_bad_long_inputs_are_refused_naming_the_field(planner, kwargs, field, words):
    error = refused(planner, request(planner, **kwargs))
    assert field in fields(error) and words in error.message


def test_tasks_without_one_prompt_per_row_are_refused(planner, tmp_path):
    extract = PluginChoice("extract")
    error = refused(planner, request(planner, "texts", "causal_lm", long_inputs=extract))
    assert fields(error) == ["long_inputs"] and "causal_lm run has no prompt" in error.message
    chat_model = tmp_path / "chat-llama"
    build_from_config("llama", TINY_LLAMA, [DOCUMENT, SUMMARY], 300, chat_model)
    with_template = train_tokenizer("llama", [DOCUMENT, SUMMARY], 300)
    with_template.chat_template = TEMPLATE
    with_template.save_pretrained(chat_model)
    messages = replace(
        request(planner, "chats", long_inputs=extract), model=ModelChoice(path=str(chat_model))
    )
    error = refused(planner, messages)
    assert fields(error) == ["long_inputs"] and "messages column" in error.message
    error = refused(planner, request(planner, "texts", "causal_lm", input_token_budget=8))
    assert fields(error) == ["input_token_budget"]
    error = refused(planner, request(planner, "texts", "seq2seq", input_token_budget=65))
    assert fields(error) == ["input_token_budget"] and "max_sequence_length (64)" in error.message


def test_the_request_fields_reach_the_spec():
    spec = train_spec(
        pb.TrainModelRequest(
            long_inputs=common_pb2.PluginSpec(name="extract"), input_token_budget=96
        )
    )
    assert spec.long_inputs == PluginChoice("extract", {}) and spec.input_token_budget == 96
    assert train_spec(pb.TrainModelRequest()).long_inputs is None
