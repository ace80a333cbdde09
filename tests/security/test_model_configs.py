"""A model built from the request's config is checked when the request is planned, before any
worker starts: a config transformers cannot build a model from (``hidden_size: -1``, a hidden
size that is not a multiple of the attention heads, an unknown activation...) is the client's
mistake, INVALID_ARGUMENT naming the field, never INTERNAL or UNKNOWN (issue 18, item 10)."""

from __future__ import annotations

import pytest

from forgeline.client import Client
from forgeline.convert import struct
from forgeline.errors import InvalidArgument
from forgeline.v1 import common_pb2
from forgeline.v1 import training_service_pb2 as pb

BERT = {
    "num_hidden_layers": 1,
    "hidden_size": 16,
    "num_attention_heads": 2,
    "intermediate_size": 32,
}
LLAMA = {**BERT, "num_attention_heads": 4, "num_key_value_heads": 2}
GPT2 = {"n_layer": 1, "n_embd": 16, "n_head": 2}
FIELD = "model.from_config.config"

BAD_CONFIGS = [
    ("bert", {**BERT, "hidden_size": -1}, "hidden_size"),
    ("bert", {**BERT, "hidden_size": 30, "num_attention_heads": 4}, "hidden_size"),
    ("bert", {**BERT, "num_attention_heads": 0}, "num_attention_heads"),
    ("bert", {**BERT, "intermediate_size": -5}, "intermediate_size"),
    ("bert", {**BERT, "num_hidden_layers": -2}, "num_hidden_layers"),
    ("bert", {**BERT, "max_position_embeddings": 0}, "max_position_embeddings"),
    ("bert", {**BERT, "hidden_size": 1.5}, "hidden_size"),
    ("bert", {**BERT, "hidden_act": "no-such-activation"}, "hidden_act"),
    ("bert", {**BERT, "hidden_dropout_prob": -3.0}, "hidden_dropout_prob"),
    ("gpt2", {**GPT2, "n_embd": 30, "n_head": 4}, "n_embd"),
    ("llama", {**LLAMA, "num_key_value_heads": 3}, "num_key_value_heads"),
    ("llama", {**LLAMA, "hidden_size": 30}, "hidden_size"),
]


@pytest.fixture(scope="module")
def training(training_sandbox) -> tuple[Client, str]:
    """A training service (no Ray: these refusals come before any capacity check) and a
    labelled dataset in its store."""
    return training_sandbox.client, training_sandbox.dataset_id


@pytest.mark.parametrize(
    ("model_type", "config", "field"),
    BAD_CONFIGS,
    ids=[f"{t}-{f}-{i}" for i, (t, _, f) in enumerate(BAD_CONFIGS)],
)
def test_a_model_config_that_builds_no_model_is_refused_naming_its_field(
    training, model_type, config, field
):
    client, dataset_id = training
    request = pb.TrainModelRequest(
        train=common_pb2.DatasetInput(dataset_id=dataset_id),
        model=pb.ModelSource(
            from_config=pb.ModelFromConfig(
                model_type=model_type, config=struct(config), vocab_size=100
            )
        ),
        hyper_parameters=common_pb2.HyperParameters(max_steps=1, max_sequence_length=16),
    )
    with pytest.raises(InvalidArgument) as caught:
        client.training.TrainModel(request)
    assert [v.field for v in caught.value.violations] == [f"{FIELD}.{field}"], caught.value
    assert caught.value.message.startswith(f"{FIELD}.{field}: ")
    assert len(caught.value.message) < 600
