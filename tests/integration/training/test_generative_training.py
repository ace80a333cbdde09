"""TrainModel for the generative tasks over gRPC on the session's local Ray: instruction SFT of a
tiny llama (LoRA on prompt/response rows; prompt tuning on chat messages through a chat
template), seq2seq of a tiny T5, and the requests refused before any work, naming the field."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pyarrow as pa
import pytest

from forgeline.artifacts import Lineage
from forgeline.convert import struct
from forgeline.errors import FailedPrecondition, InvalidArgument
from forgeline.finetune.build import build_from_config
from forgeline.finetune.data import encode_generative
from forgeline.models import ModelRepository, read_manifest
from forgeline.v1 import common_pb2
from forgeline.v1 import training_service_pb2 as pb
from tests.fixtures import BAD, GOOD, TINY_BERT, TINY_GPT2, spec
from tests.integration.training.test_training_service import operation_count
from tests.waiting import wait_done

TINY_LLAMA = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "max_position_embeddings": 128,
}
TINY_T5 = {"d_model": 32, "d_kv": 16, "d_ff": 64, "num_layers": 2, "num_heads": 2}
TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def from_config(model_type: str, config: dict) -> pb.ModelSource:
    return pb.ModelSource(
        from_config=pb.ModelFromConfig(model_type=model_type, config=struct(config), vocab_size=300)
    )


def sentiment_pairs(copies: int, long_every: int = 0) -> pa.Table:
    """Each review as a prompt, its sentiment word as the response; with ``long_every``, every
    such row's prompt is the review six times over (too long for a 16-token budget)."""
    prompts = [
        " ".join([text] * 6) if long_every and i % long_every == 0 else text
        for i, text in enumerate((GOOD + BAD) * copies)
    ]
    responses = (["positive"] * len(GOOD) + ["negative"] * len(BAD)) * copies
    return pa.table({"prompt": prompts, "response": responses})


def save(training, table: pa.Table, name: str):
    return training.datasets.save(
        table, name=name, text_column="", label_column="", lineage=Lineage()
    )


@pytest.mark.slow
def test_instruction_lora_on_a_tiny_llama_learns_the_responses(training, tclient):
    rows = sentiment_pairs(4, long_every=3)
    train = save(training, rows, "sft-train")
    held_out = save(training, sentiment_pairs(1), "sft-eval")
    done = wait_done(
        tclient,
        tclient.training.TrainModel(
            pb.TrainModelRequest(
                train=common_pb2.DatasetInput(dataset_id=train.id),
                eval=common_pb2.DatasetInput(dataset_id=held_out.id),
                model=from_config("llama", TINY_LLAMA),
                task=pb.TASK_INSTRUCTION,
                finetune=spec("lora", r=8),
                hyper_parameters=common_pb2.HyperParameters(
                    learning_rate=1e-2,
                    batch_size_per_worker=8,
                    max_steps=12,
                    seed=1,
                    max_sequence_length=16,  # some reviews do not fit: truncated, counted
                ),
            )
        ),
        pb.TrainModelResponse,
    )
    assert done.model.kind == common_pb2.ARTIFACT_KIND_ADAPTER and done.steps == 12
    assert done.trainable_parameters < done.total_parameters
    # Only two response words to learn: the perplexity on the responses falls well below a
    # fresh model's (about its vocabulary, 300); it reached ~59 here.
    assert math.isfinite(done.evaluation.perplexity) and done.evaluation.perplexity < 120
    record = training.store.get(done.model.id)
    folder = training.store.verify(record)
    assert read_manifest(folder)["task"] == "instruction"
    model, tokenizer, task = ModelRepository(training.store).load(record)
    assert task == "instruction" and type(model.get_base_model()).__name__ == "LlamaForCausalLM"
    # Every row trained (none dropped), the cut ones counted as the encoding counts them.
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch, "rows.parquet")
        import pyarrow.parquet as pq

        pq.write_table(rows, path)
        expected = encode_generative(
            "instruction", str(path), {"prompt": "prompt", "response": "response"}, tokenizer, 16
        )
    assert done.metrics["rows"] == rows.num_rows
    assert done.metrics["truncated_rows"] == expected.truncated > 0


def chat_model(training, template: str = TEMPLATE) -> str:
    """A tiny llama whose tokenizer has a chat ``template``, as a model artifact."""
    texts = GOOD + BAD + ["<|user|> <|assistant|> </s> positive negative"]
    with training.store.staging_path() as folder:
        build_from_config("llama", TINY_LLAMA, texts, 300, folder)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
        tokenizer.chat_template = template
        tokenizer.save_pretrained(folder)
        return training.store.commit_dir(
            folder,
            kind="model",
            name="chat-llama",
            metadata={"format": "hf", "task": ""},
            lineage=Lineage(),
        ).id


@pytest.mark.slow
def test_prompt_tuning_on_chat_messages_through_the_template(training, tclient):
    conversations = [
        [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        for prompt, response in zip(*sentiment_pairs(2).to_pydict().values(), strict=True)
    ]
    train = save(training, pa.table({"messages": conversations}), "chat-train")
    done = wait_done(
        tclient,
        tclient.training.TrainModel(
            pb.TrainModelRequest(
                train=common_pb2.DatasetInput(dataset_id=train.id),
                model=pb.ModelSource(artifact_id=chat_model(training)),
                task=pb.TASK_INSTRUCTION,
                finetune=spec("prompt_tuning", num_virtual_tokens=4),
                hyper_parameters=common_pb2.HyperParameters(
                    batch_size_per_worker=8, max_steps=4, seed=2, max_sequence_length=64
                ),
            )
        ),
        pb.TrainModelResponse,
    )
    assert done.model.kind == common_pb2.ARTIFACT_KIND_ADAPTER and done.steps == 4
    assert done.metrics["rows"] == len(conversations) and done.metrics["truncated_rows"] == 0
    model, _, task = ModelRepository(training.store).load(training.store.get(done.model.id))
    assert task == "instruction" and model.peft_config["default"].task_type == "CAUSAL_LM"


@pytest.mark.slow
def test_seq2seq_of_a_tiny_t5_trains_and_loads_as_a_seq2seq_model(training, tclient):
    table = sentiment_pairs(4).rename_columns(["document", "summary"])
    train = save(training, table, "s2s-train")
    done = wait_done(
        tclient,
        tclient.training.TrainModel(
            pb.TrainModelRequest(
                train=common_pb2.DatasetInput(
                    dataset_id=train.id, text_column="document", target_column="summary"
                ),
                eval=common_pb2.DatasetInput(
                    dataset_id=train.id, text_column="document", target_column="summary"
                ),
                model=from_config("t5", TINY_T5),
                task=pb.TASK_SEQ2SEQ,
                finetune=spec("lora", r=4),
                hyper_parameters=common_pb2.HyperParameters(
                    learning_rate=1e-2, batch_size_per_worker=8, max_steps=10, seed=3
                ),
            )
        ),
        pb.TrainModelResponse,
    )
    assert done.model.kind == common_pb2.ARTIFACT_KIND_ADAPTER and done.steps == 10
    assert math.isfinite(done.evaluation.perplexity) and done.evaluation.perplexity < 100
    assert done.metrics["rows"] == table.num_rows
    model, _, task = ModelRepository(training.store).load(training.store.get(done.model.id))
    assert task == "seq2seq"
    assert type(model.get_base_model()).__name__ == "T5ForConditionalGeneration"


def test_generative_requests_that_cannot_work_are_refused_naming_the_field(training, tclient):
    pairs = save(training, sentiment_pairs(1), "bad-pairs")
    reviews = save(training, pa.table({"text": GOOD + BAD}), "bad-texts")
    chats = save(
        training,
        pa.table(
            {
                "messages": [
                    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
                ]
                * 8
            }
        ),
        "bad-chats",
    )
    before = operation_count(tclient)

    def refused(error_type, field, **fields):
        request = {
            "train": common_pb2.DatasetInput(dataset_id=pairs.id),
            "model": from_config("llama", TINY_LLAMA),
            "task": pb.TASK_INSTRUCTION,
            "hyper_parameters": common_pb2.HyperParameters(batch_size_per_worker=2),
            **fields,
        }
        with pytest.raises(error_type) as caught:
            tclient.training.TrainModel(pb.TrainModelRequest(**request))
        assert field in caught.value.message, caught.value.message
        return caught.value

    # The columns a task needs.
    error = refused(
        InvalidArgument, "train.prompt_column", train=common_pb2.DatasetInput(dataset_id=reviews.id)
    )
    assert "messages_column" in error.message
    refused(
        InvalidArgument,
        "train.response_column",
        train=common_pb2.DatasetInput(dataset_id=pairs.id, response_column="answer"),
    )
    refused(
        InvalidArgument,
        "train.target_column",
        train=common_pb2.DatasetInput(dataset_id=reviews.id),
        model=from_config("t5", TINY_T5),
        task=pb.TASK_SEQ2SEQ,
    )
    # A messages dataset needs a chat template; a model from config has none.
    error = refused(
        FailedPrecondition,
        "train.messages_column",
        train=common_pb2.DatasetInput(dataset_id=chats.id),
    )
    assert "chat template" in error.message
    # Architectures that do not fit the task.
    error = refused(
        InvalidArgument, "model.from_config.model_type", model=from_config("bert", TINY_BERT)
    )
    assert "decoder-only" in error.message
    error = refused(
        InvalidArgument,
        "model.from_config.model_type",
        model=from_config("gpt2", TINY_GPT2),
        train=common_pb2.DatasetInput(
            dataset_id=pairs.id, text_column="prompt", target_column="response"
        ),
        task=pb.TASK_SEQ2SEQ,
    )
    assert "encoder-decoder" in error.message
    refused(
        InvalidArgument,
        "model.from_config.model_type",
        model=from_config("t5", TINY_T5),
    )
    # A chat template that cannot render a conversation turn by turn.
    error = refused(
        FailedPrecondition,
        "model.artifact_id",
        model=pb.ModelSource(
            artifact_id=chat_model(training, "{{ raise_exception('system turns only') }}")
        ),
    )
    assert "chat template" in error.message and "system turns only" in error.message
    assert operation_count(tclient) == before  # nothing was accepted, nothing started
