"""The generative tasks' encoding: which tokens the loss covers, the truncation rule, the chat
format, seq2seq labels; and the columns each task resolves, refused naming the field."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("transformers")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from forgeline.artifacts import ArtifactStore, Lineage  # noqa: E402
from forgeline.datasets import DatasetRef, DatasetRepository  # noqa: E402
from forgeline.errors import FailedPrecondition, InvalidArgument  # noqa: E402
from forgeline.finetune.build import train_tokenizer  # noqa: E402
from forgeline.finetune.columns import resolve_columns  # noqa: E402
from forgeline.finetune.data import (  # noqa: E402
    IGNORE,
    RESPONSE_SHARE,
    encode_conversation,
    encode_generative,
)

WORDS = "what is two plus two four say hello there friend user assistant system the answer"
# A template in the style of Zephyr's: a header per turn, an end mark after each.
TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@pytest.fixture(scope="module")
def tokenizer():
    """A tiny llama-style tokenizer (forgeline's own, as a model from config gets it)."""
    texts = [WORDS, "<|user|> <|assistant|> <|system|> </s>"] * 4
    return train_tokenizer("llama", texts, 200)


@pytest.fixture()
def chat(tokenizer):
    tokenizer.chat_template = TEMPLATE
    yield tokenizer
    tokenizer.chat_template = None


def learned(tokenizer, example) -> str:
    """The text of the tokens the loss covers."""
    return tokenizer.decode([t for t in example["labels"] if t != IGNORE])


def pair(prompt: str, response: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]


def test_only_the_response_tokens_are_labelled_with_a_chat_template(chat):
    example, cut = encode_conversation(chat, pair("what is two plus two", "four"), 128)
    assert not cut
    ids, labels = example["input_ids"], example["labels"]
    assert len(ids) == len(labels) == len(example["attention_mask"])
    # The labels are the ids themselves on the response and its end mark, nothing else: the
    # prompt and the assistant header are context only.
    response = [i for i, t in enumerate(labels) if t != IGNORE]
    assert all(labels[i] == ids[i] for i in response)
    assert response == list(range(response[0], len(ids)))  # the tail: "four</s>\n"
    assert learned(chat, example).replace(" ", "").startswith("four</s>")
    prompt_ids = chat(
        chat.apply_chat_template(
            pair("what is two plus two", "")[:1], tokenize=False, add_generation_prompt=True
        ),
        add_special_tokens=False,
    )["input_ids"]
    assert ids[: len(prompt_ids)] == prompt_ids
    assert response[0] == len(prompt_ids)  # nothing of the prompt, header included, is learned


def test_every_assistant_turn_of_a_conversation_is_learned(chat):
    conversation = [
        {"role": "system", "content": "the answer"},
        {"role": "user", "content": "say hello"},
        {"role": "assistant", "content": "hello there"},
        {"role": "user", "content": "what is two plus two"},
        {"role": "assistant", "content": "four"},
    ]
    example, _ = encode_conversation(chat, conversation, 256)
    text = learned(chat, example).replace(" ", "")
    assert "hellothere" in text and "four" in text
    assert "sayhello" not in text and "theanswer" not in text and "what" not in text


def test_without_a_template_the_prompt_is_context_and_the_response_ends_with_eos(tokenizer):
    example, _ = encode_conversation(tokenizer, pair("what is two plus two", "four"), 64)
    ids, labels = example["input_ids"], example["labels"]
    assert ids[-1] == tokenizer.eos_token_id and labels[-1] == tokenizer.eos_token_id
    assert [tokenizer.convert_ids_to_tokens(t) for t in labels if t != IGNORE] == [
        "four",
        tokenizer.eos_token,
    ]


def test_a_long_row_keeps_its_response_share_and_the_end_of_its_prompt(chat):
    prompt = " ".join(f"w{i}" for i in range(80))
    response = " ".join(["hello"] * 60)
    full, cut = encode_conversation(chat, pair(prompt, response), 10_000)
    assert not cut
    budget = 40
    example, cut = encode_conversation(chat, pair(prompt, response), budget)
    assert cut and len(example["input_ids"]) == budget
    first = next(i for i, t in enumerate(full["labels"]) if t != IGNORE)
    keep = math.ceil(budget * RESPONSE_SHARE)
    # The response: its first `keep` tokens; the context: the last budget - keep before it.
    assert example["input_ids"] == (
        full["input_ids"][first - (budget - keep) : first] + full["input_ids"][first : first + keep]
    )
    assert example["labels"][: budget - keep] == [IGNORE] * (budget - keep)
    assert example["labels"][budget - keep :] == full["labels"][first : first + keep]


def test_a_short_response_keeps_all_of_itself_and_gives_the_prompt_the_rest(chat):
    prompt = " ".join(f"w{i}" for i in range(80))
    full, _ = encode_conversation(chat, pair(prompt, "four"), 10_000)
    example, cut = encode_conversation(chat, pair(prompt, "four"), 30)
    assert cut and len(example["input_ids"]) == 30
    response = [t for t in full["labels"] if t != IGNORE]
    assert [t for t in example["labels"] if t != IGNORE] == response
    assert example["input_ids"][-len(response) :] == full["input_ids"][-len(response) :]


def test_rows_are_never_dropped_and_truncations_are_counted(chat, tmp_path):
    path = tmp_path / "rows.parquet"
    long = " ".join(["two"] * 100)
    pq.write_table(pa.table({"q": ["say hello", long, "what"], "a": ["hello", "four", long]}), path)
    encoded = encode_generative(
        "instruction", str(path), {"prompt": "q", "response": "a"}, chat, 32
    )
    assert len(encoded.examples) == 3 and encoded.truncated == 2
    assert all(len(e["input_ids"]) <= 32 for e in encoded.examples)
    assert all(any(t != IGNORE for t in e["labels"]) for e in encoded.examples)


def test_seq2seq_labels_are_the_target_ids(tokenizer, tmp_path):
    path = tmp_path / "pairs.parquet"
    pq.write_table(
        pa.table(
            {"text": ["what is two plus two", " ".join(["two"] * 50)], "target": ["four"] * 2}
        ),
        path,
    )
    encoded = encode_generative(
        "seq2seq", str(path), {"text": "text", "target": "target"}, tokenizer, 16
    )
    first, second = encoded.examples
    assert first["labels"] == tokenizer(text_target="four")["input_ids"]
    assert first["input_ids"] == tokenizer("what is two plus two")["input_ids"]
    assert len(second["input_ids"]) == 16 and encoded.truncated == 1


@pytest.fixture()
def repo(tmp_path) -> DatasetRepository:
    return DatasetRepository(ArtifactStore(tmp_path / "artifacts"))


def saved(repo: DatasetRepository, table: pa.Table, name: str):
    return repo.save(table, name=name, text_column="", label_column="", lineage=Lineage())


def test_instruction_columns_resolve_and_missing_ones_are_named(repo):
    pairs = saved(repo, pa.table({"prompt": ["a"], "response": ["b"]}), "pairs")
    _, columns = resolve_columns(repo, DatasetRef(pairs.id), "train", "instruction")
    assert columns == {"prompt": "prompt", "response": "response"}
    renamed = saved(repo, pa.table({"q": ["a"], "a": ["b"]}), "renamed")
    _, columns = resolve_columns(
        repo, DatasetRef(renamed.id, prompt_column="q", response_column="a"), "train", "instruction"
    )
    assert columns == {"prompt": "q", "response": "a"}
    with pytest.raises(InvalidArgument) as caught:
        resolve_columns(repo, DatasetRef(renamed.id), "train", "instruction")
    assert "train.prompt_column" in caught.value.message
    with pytest.raises(InvalidArgument) as caught:
        resolve_columns(repo, DatasetRef(renamed.id, prompt_column="q"), "eval", "instruction")
    assert "eval.response_column" in caught.value.message
    with pytest.raises(InvalidArgument) as caught:
        resolve_columns(repo, DatasetRef(pairs.id), "train", "seq2seq")
    assert "train.text_column" in caught.value.message


def test_a_messages_column_is_found_and_bad_conversations_are_refused(repo):
    good = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    chats = saved(repo, pa.table({"messages": [good]}), "chats")
    _, columns = resolve_columns(repo, DatasetRef(chats.id), "train", "instruction")
    assert columns == {"messages": "messages"}
    no_answer = saved(repo, pa.table({"messages": [good, good[:1]]}), "no-answer")
    with pytest.raises(FailedPrecondition) as caught:
        resolve_columns(repo, DatasetRef(no_answer.id), "train", "instruction")
    assert "train.messages_column" in caught.value.message
    assert "row 1" in caught.value.message and "no assistant turn" in caught.value.message
