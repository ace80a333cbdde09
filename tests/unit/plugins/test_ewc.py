"""EWC: the Fisher information is zero for weights the old rows never use and positive for the
ones they do, the penalty is lambda/2 * sum F (w - w_old)^2, and online EWC adds the previous
update's Fisher, decayed."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from forgeline.contracts.regularizers import RegularizerContext  # noqa: E402
from forgeline.plugins.regularizers.ewc import EWC  # noqa: E402
from forgeline.testing.suites.regularizers import old_batches, tiny  # noqa: E402


def ewc(**config) -> EWC:
    return EWC(EWC.Config(**config))


def test_the_fisher_follows_what_the_old_rows_use():
    plugin = ewc()
    plugin.prepare(tiny(), RegularizerContext(old_batches=old_batches))
    assert plugin.samples == 8
    words = plugin.fisher["bert.embeddings.word_embeddings.weight"]
    used = {int(i) for b in old_batches() for i in b["input_ids"].flatten()}
    unused = [i for i in range(40) if i not in used]
    assert unused and float(words[unused].abs().sum()) == 0.0
    assert all(float(words[i].abs().sum()) > 0 for i in used)
    assert float(plugin.fisher["classifier.weight"].sum()) > 0


def test_the_penalty_is_the_fisher_weighted_distance():
    model = tiny()
    plugin = ewc(strength=10.0, fisher_samples=3)
    plugin.prepare(model, RegularizerContext(old_batches=old_batches))
    assert plugin.samples == 3
    with torch.no_grad():
        model.classifier.weight.add_(0.5)
    expected = 0.5 * 10.0 * float((plugin.fisher["classifier.weight"] * 0.25).sum())
    assert float(plugin.penalty(model)) == pytest.approx(expected, rel=1e-5)


def test_online_ewc_adds_the_previous_fisher_decayed(tmp_path):
    first = ewc()
    first.prepare(tiny(), RegularizerContext(old_batches=old_batches))
    first.save(tmp_path / "previous")
    second = ewc(online=True, gamma=0.5)
    second.prepare(
        tiny(), RegularizerContext(old_batches=old_batches, previous=tmp_path / "previous")
    )
    name = "classifier.weight"
    assert torch.allclose(second.fisher[name], 1.5 * first.fisher[name])
    offline = ewc(online=False)
    offline.prepare(
        tiny(), RegularizerContext(old_batches=old_batches, previous=tmp_path / "previous")
    )
    assert torch.allclose(offline.fisher[name], first.fisher[name])
