"""The training recipe with a regularizers plugin (in this process, no Ray): fine-tuning a
trained classifier on conflicting new rows moves the weights the old task relies on (weighted by
their Fisher information) far less under EWC than without it, and saves the EWC state for the
next update. (Whether that keeps an old task's accuracy is a question for real data: the
continual-learning scenario, not a unit test.)"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from forgeline import modelio  # noqa: E402
from forgeline.finetune.recipe import RecipeConfig  # noqa: E402
from forgeline.plugins.regularizers.ewc import EWC  # noqa: E402
from forgeline.registry import RegularizerContext  # noqa: E402
from forgeline.testing.classifiers import (  # noqa: E402
    LABELS,
    classifier,
    reviews,
    train_locally,
    write_rows,
)


def test_ewc_holds_the_weights_the_old_task_needs(tmp_path):
    import transformers

    old = classifier(tmp_path)  # trained on the reviews
    old_texts, old_labels = reviews(3)
    old_rows = write_rows(tmp_path / "old.parquet", old_texts, old_labels)
    # The new rows contradict the old ones (labels swapped): the worst case for forgetting.
    texts, labels = reviews(6, offset=500)
    new_rows = write_rows(
        tmp_path / "new.parquet", texts, ["neg" if y == "pos" else "pos" for y in labels]
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(old)

    def old_batches():
        batch = dict(tokenizer(old_texts, padding=True, return_tensors="pt"))
        batch["labels"] = torch.tensor([LABELS.index(y) for y in old_labels])
        yield batch

    def update(name: str, **regularizer):
        out = tmp_path / name
        train_locally(
            RecipeConfig(
                model_path=str(old),
                train_path=str(new_rows),
                old_path=str(old_rows),
                labels=LABELS,
                learning_rate=5e-3,
                batch_size=10,
                epochs=3,
                max_length=32,
                output_dir=str(out),
                **regularizer,
            )
        )
        return out

    naive = update("naive")
    held = update("ewc", regularizer="ewc", regularizer_config={"strength": 100})
    # An independent judge: the Fisher information of the old model on the old rows.
    judge = EWC(EWC.Config(strength=2.0))
    judge.prepare(modelio.load_torch(old), RegularizerContext(old_batches=old_batches))

    def moved(folder) -> float:  # sum F (w - w_old)^2
        return float(judge.penalty(modelio.load_torch(folder)))

    assert moved(held) < 0.01 * moved(naive)
    assert (held / "regularizer" / "ewc_fisher.safetensors").exists()
    assert not (naive / "regularizer").exists()
