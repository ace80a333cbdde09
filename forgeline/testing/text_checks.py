"""What the input filter and output rule suites share: a tiny text-classification model artifact
(a random-init BERT, classes "ham" and "spam", with a word-level tokenizer) committed to a real
ArtifactStore and found through the same lookup the services use
(forgeline.modelio.classifier_folder), the awkward texts every check must survive, and the checks
of what a check finds.

torch, transformers and tokenizers are imported only when a model is built, so that importing the
suites stays cheap. forgeline's own safety tests build their model artifacts here too.
"""

from __future__ import annotations

import functools
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import ValidationError

from forgeline.artifacts import ArtifactRecord, ArtifactStore, Lineage
from forgeline.contracts.text_checks import SafetyContext, TextCheck, TextMatch
from forgeline.modelio import classifier_folder
from forgeline.registry import config_schema, contract_problem
from forgeline.testing.selection import contract_instance

MODEL_NAME = "contract-model"
ID2LABEL = {0: "ham", 1: "spam"}
WORDS = "buy now cheap pills free money click here hello thanks the food was good 垃圾 广告 你好"
# Texts every check must survive: empty, Chinese, emoji, PII-looking, long.
TEXTS = [
    "",
    "hello, the food was good",
    "BUY NOW!!! cheap pills, free money: click here",
    "你好，这是垃圾广告，加微信 13800138000",
    "Ｆｕｌｌ-width ＳＰＡＭ and ﬁne ligatures 🙂🚀",
    "mail john.doe@example.com or call +1 (415) 555-0132; card 4111 1111 1111 1111",
    "spam " * 300,
]


def tiny_classifier(folder: Path, bias: tuple[float, float] | None = None) -> Path:
    """Saves the model (safetensors) and its tokenizer into ``folder``; ``bias`` sets the
    classifier's bias, e.g. (-10, 10) to make "spam" near certain for every text."""
    import torch
    import transformers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {token: i for i, token in enumerate(special + sorted(set(WORDS.split())))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.normalizer = normalizers.BertNormalizer(lowercase=True)
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        id2label=ID2LABEL,
        label2id={v: k for k, v in ID2LABEL.items()},
    )
    model = transformers.BertForSequenceClassification(config).eval()
    if bias is not None:
        with torch.no_grad():
            model.classifier.bias.copy_(torch.tensor(bias))
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def commit_model(
    store: ArtifactStore, name: str = MODEL_NAME, bias: tuple[float, float] | None = None
) -> ArtifactRecord:
    """The tiny model committed to ``store`` as a text-classification model artifact."""
    with store.staging_path() as staged:
        tiny_classifier(staged, bias)
        return store.commit_dir(
            staged,
            kind="model",
            name=name,
            metadata={"format": "hf", "task": "sequence_classification", "labels": ["ham", "spam"]},
            lineage=Lineage(),
        )


def model_store(root: Path, bias: tuple[float, float] | None = None) -> ArtifactStore:
    """An artifact store holding the tiny model as the model artifact ``MODEL_NAME``."""
    store = ArtifactStore(root)
    commit_model(store, bias=bias)
    return store


def safety_context(store: ArtifactStore) -> SafetyContext:
    """The model lookup a service gives its safety checks, over ``store``."""
    return SafetyContext(model_folder=functools.partial(classifier_folder, store))


def assert_kernel_contract(kind: str, cls: type[TextCheck]) -> None:
    """The registry's contract, a description, and a config schema that describes every field
    and refuses unknown ones."""
    assert contract_problem(kind, cls.name, cls) is None
    assert cls.description(), "the docstring's first paragraph is its description"
    schema = json.loads(json.dumps(config_schema(cls)))
    assert schema["type"] == "object"
    for name, prop in schema.get("properties", {}).items():
        assert prop.get("description"), f"config field {name!r} has no description"
    with pytest.raises(ValidationError):
        cls.Config.model_validate({**(cls.contract_config() or {}), "no_such_field": 1})


def prepared(cls: type[TextCheck], ctx: SafetyContext) -> TextCheck:
    """The plugin built from its contract config, prepared as a service prepares it."""
    check = contract_instance(cls)
    check.prepare(ctx)
    return check


def assert_finds_well_formed(check: TextCheck) -> None:
    """One list per text, spans inside the text, labelled, scored in [0, 1]; nothing for no
    texts; the same answer twice."""
    found = check.find(TEXTS)
    assert isinstance(found, list) and len(found) == len(TEXTS)
    for text, matches in zip(TEXTS, found, strict=True):
        assert isinstance(matches, list)
        for m in matches:
            assert isinstance(m, TextMatch)
            assert 0 <= m.start <= m.end <= len(text), (m, text)
            assert isinstance(m.label, str) and m.label
            assert 0.0 <= m.score <= 1.0
    assert check.find([]) == []
    assert check.find(TEXTS) == found
    assert [check.find([t])[0] for t in TEXTS] == found  # batching changes nothing


def assert_thread_safe(check: TextCheck) -> None:
    """Four threads finding in the same texts at once all get the single-threaded answer."""
    expected = check.find(TEXTS)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: check.find(TEXTS), range(8)))
    assert all(answer == expected for answer in answers)
