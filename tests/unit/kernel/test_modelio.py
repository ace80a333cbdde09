"""Model folders: pruned and int8 models survive a save and a load with the same logits, and
a pickle is refused before anything is read."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from forgeline import modelio  # noqa: E402
from forgeline.errors import FailedPrecondition  # noqa: E402

TINY = {
    "vocab_size": 50,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
    "num_labels": 3,
}


def tiny_model():
    torch.manual_seed(0)
    config = transformers.BertConfig(**TINY)
    return transformers.BertForSequenceClassification(config).eval()


def batch():
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 50, (3, 9), generator=generator)
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    return {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}


def test_a_pruned_model_is_smaller_and_loads_back_with_the_same_logits(tmp_path):
    model = tiny_model()
    shapes = modelio.prune(model, [([0, 2], list(range(0, 64, 2))), ([3], list(range(40)))])
    assert shapes == [{"heads": 2, "intermediate": 32}, {"heads": 1, "intermediate": 40}]
    layer = modelio.encoder_layers(model)[1]
    assert layer.attention.query.weight.shape == (8, 32)
    assert layer.attention_output.dense.weight.shape == (32, 8)
    expected = modelio.TorchClassifier(model).logits(batch())

    modelio.save_pruned(model, tmp_path)
    assert modelio.folder_format(tmp_path) == modelio.HF_PRUNED
    loaded = modelio.load_classifier(tmp_path)
    np.testing.assert_allclose(loaded.logits(batch()), expected, atol=1e-5)


def test_pruning_keeps_the_kept_heads_computation(tmp_path):
    """Keeping every head and neuron changes nothing: the slicing is exact."""
    model = tiny_model()
    before = modelio.TorchClassifier(model).logits(batch())
    modelio.prune(model, [(list(range(4)), list(range(64)))] * 2)
    np.testing.assert_allclose(modelio.TorchClassifier(model).logits(batch()), before, atol=1e-5)


def test_an_int8_model_saves_as_safetensors_and_loads_back(tmp_path):
    model = tiny_model()
    quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, torch.qint8)
    expected = modelio.TorchClassifier(quantized).logits(batch())
    modelio.save_int8(quantized, tmp_path, base_format=modelio.HF, layers=None)
    assert sorted(p.name for p in modelio.weight_files(tmp_path)) == ["model.safetensors"]
    assert modelio.folder_format(tmp_path) == modelio.HF_INT8
    loaded = modelio.load_classifier(tmp_path)
    np.testing.assert_allclose(loaded.logits(batch()), expected, atol=1e-6)


def test_an_int8_pruned_model_loads_back(tmp_path):
    model = tiny_model()
    layers = modelio.prune(model, [([1], list(range(10))), ([0, 1, 2], list(range(64)))])
    quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, torch.qint8)
    expected = modelio.TorchClassifier(quantized).logits(batch())
    modelio.save_int8(quantized, tmp_path, base_format=modelio.HF_PRUNED, layers=layers)
    np.testing.assert_allclose(
        modelio.load_classifier(tmp_path).logits(batch()), expected, atol=1e-6
    )


@pytest.mark.parametrize("name", ["pytorch_model.bin", "weights.pt", "model.ckpt"])
def test_a_pickle_is_refused_by_name(tmp_path, name):
    tiny_model().save_pretrained(tmp_path)
    (tmp_path / name).write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(FailedPrecondition) as err:
        modelio.load_classifier(tmp_path)
    assert err.value.reason == "PICKLE_REFUSED" and name in str(err.value)


def test_a_pickle_is_refused_by_content_whatever_its_name(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    torch.save({"x": torch.zeros(1)}, tmp_path / "extra_weights")
    with pytest.raises(FailedPrecondition, match="extra_weights is a pickle"):
        modelio.check_safe(tmp_path)


def test_a_folder_without_safe_weights_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FailedPrecondition) as err:
        modelio.check_safe(tmp_path)
    assert err.value.reason == "NO_SAFE_WEIGHTS"


def test_weights_that_do_not_fit_the_recorded_shapes_are_refused(tmp_path):
    model = tiny_model()
    modelio.prune(model, [([0, 1], list(range(32))), ([2], list(range(64)))])
    modelio.save_pruned(model, tmp_path)
    modelio.write_format(
        tmp_path,
        {"layers": [{"heads": 2, "intermediate": 32}, {"heads": 2, "intermediate": 64}]},
    )
    with pytest.raises(FailedPrecondition) as err:
        modelio.load_torch(tmp_path)
    assert err.value.reason == "WEIGHTS_MISMATCH"


def test_loads_in_many_threads_leave_torch_init_working(tmp_path):
    """transformers swaps torch.nn.init for no-ops while it loads; loads racing in a service's
    threads must not leave them swapped, or every model built afterwards keeps garbage weights."""
    import threading

    tiny_model().save_pretrained(tmp_path, safe_serialization=True)
    originals = {name: getattr(torch.nn.init, name) for name in ("normal_", "zeros_", "ones_")}
    errors = []

    def load():
        try:
            for _ in range(12):
                modelio.load_torch(tmp_path)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert {name: getattr(torch.nn.init, name) for name in originals} == originals
    with modelio.CONSTRUCTION:
        fresh = transformers.BertForSequenceClassification(transformers.BertConfig(**TINY))
    embeddings = fresh.bert.embeddings.word_embeddings.weight
    assert 0.01 < float(embeddings.std()) < 0.03  # BERT's normal(0, 0.02) init ran
    assert float(fresh.bert.embeddings.LayerNorm.weight.min()) == 1.0
