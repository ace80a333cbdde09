"""Where a run's starting weights come from: the bundled MiniLM, a local folder, or a fresh
model built from a config with a tokenizer trained on the training texts (no hub downloads).

``materialize`` stores such a fresh model as an artifact before any worker starts, so the
training and tuning services both train (and commit adapters) on a base that is never lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeline.artifacts import ArtifactStore, Lineage
from forgeline.datasets import DatasetRepository
from forgeline.finetune.planning import TrainPlan, model_config_fields

if TYPE_CHECKING:
    from forgeline.operations import OperationContext


def materialize(
    plan: TrainPlan,
    ctx: OperationContext,
    key: str,
    *,
    datasets: DatasetRepository,
    artifacts: ArtifactStore,
    producer: str,
) -> Path:
    """The folder the workers load: a model from config is built (seeded) and stored as an
    artifact first (once per ``key``: a restarted operation finds it), so an adapter trained on
    it always finds its base. ``producer`` names the operation in the base's lineage."""
    if plan.model.path is not None:
        return plan.model.path
    base_key = f"{key}/base"
    record = artifacts.find_by_request_id(base_key)
    if record is None:
        import torch

        choice = plan.spec.model
        torch.manual_seed(plan.hyper["seed"])
        with artifacts.staging_path() as folder:
            build_from_config(
                choice.model_type,
                model_config_fields(choice.model_type, choice.config),
                corpus(plan, datasets),
                choice.vocab_size or 8000,
                folder,
            )
            record = artifacts.commit_dir(
                folder,
                kind="model",
                name=f"{plan.output_name}-base",
                metadata={"format": "hf", "task": "", "model_type": choice.model_type},
                lineage=Lineage(
                    parent_ids=[plan.train.id],
                    producer=producer,
                    operation=ctx.name,
                    config={
                        "model_type": choice.model_type,
                        "config": choice.config,
                        "vocab_size": choice.vocab_size or 8000,
                    },
                ),
                request_id=base_key,
            )
    plan.model.artifact = record
    plan.model.path = artifacts.verify(record)
    return plan.model.path


def corpus(plan: TrainPlan, datasets: DatasetRepository) -> Iterable[str]:
    """The training texts a tokenizer is trained on: every text column the task reads (a
    seq2seq target and an instruction's response too, a conversation's every turn)."""
    names = list(plan.columns.values()) or [plan.text_column]
    table = datasets.read(plan.train, columns=names)
    for name in names:
        for value in table.column(name).to_pylist():
            if isinstance(value, list):  # a conversation
                yield from (turn.get("content") or "" for turn in value)
            else:
                yield value or ""


def build_from_config(
    model_type: str,
    config: dict[str, Any],
    texts: Iterable[str],
    vocab_size: int,
    out_dir: Path,
) -> Path:
    """A random-init model of ``model_type`` and a tokenizer trained on ``texts``, saved to
    ``out_dir`` as a standard Hugging Face folder."""
    from transformers import AutoConfig, AutoModel

    tokenizer = train_tokenizer(model_type, texts, vocab_size)
    ids = {
        key: getattr(tokenizer, key)
        for key in ("bos_token_id", "eos_token_id", "pad_token_id")
        if getattr(tokenizer, key) is not None
    }
    model_config = AutoConfig.for_model(
        model_type, **{"vocab_size": len(tokenizer), **ids, **config}
    )
    if (
        model_config.is_encoder_decoder
        and getattr(model_config, "decoder_start_token_id", None) is None
    ):
        # T5's convention (its config has no default): the decoder starts from the pad token.
        model_config.decoder_start_token_id = tokenizer.pad_token_id
    from forgeline import modelio

    with modelio.CONSTRUCTION:
        model = AutoModel.from_config(model_config)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def train_tokenizer(model_type: str, texts: Iterable[str], vocab_size: int):
    """A fast tokenizer trained on ``texts``: GPT-2's byte-level BPE for gpt2, else BPE over
    BERT's normalizer with [CLS] text [SEP] around each text."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if model_type == "gpt2":
        special = ["<|endoftext|>"]
        core = Tokenizer(models.BPE(unk_token=None))
        core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=special,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        core.train_from_iterator(texts, trainer)
        from tokenizers import decoders

        core.decoder = decoders.ByteLevel()
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=core, bos_token=special[0], eos_token=special[0], unk_token=special[0]
        )
    else:
        special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        # BPE over BERT's normalizer and pre-tokenizer (CJK characters become words of their
        # own). Not the WordPiece trainer: it numbers its "##" pieces in hash-map order, so the
        # learned vocabulary changes from process to process; BPE with every character in its
        # initial alphabet learns the same merges every time, and a seed gives the same model.
        core = Tokenizer(models.BPE(unk_token="[UNK]"))
        core.normalizer = normalizers.BertNormalizer(lowercase=True)
        core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        texts = list(texts)
        alphabet = sorted({ch for text in texts for ch in core.normalizer.normalize_str(text)})
        core.train_from_iterator(
            texts,
            trainers.BpeTrainer(
                vocab_size=vocab_size,
                special_tokens=special,
                initial_alphabet=alphabet,
                show_progress=False,
            ),
        )
        from tokenizers import processors

        core.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[
                ("[CLS]", core.token_to_id("[CLS]")),
                ("[SEP]", core.token_to_id("[SEP]")),
            ],
        )
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=core,
            pad_token="[PAD]",
            # A generative model ends its output (and a seq2seq target) with [SEP].
            eos_token="[SEP]",
            unk_token="[UNK]",
            cls_token="[CLS]",
            sep_token="[SEP]",
            mask_token="[MASK]",
        )
    return tokenizer
