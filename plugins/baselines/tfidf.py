"""TF-IDF n-grams + logistic regression (scikit-learn): the classical text-classification baseline.

Character n-grams within word boundaries (``char_wb``) need no tokenizer, so the defaults suit
Chinese as well as English. The fitted model is stored without pickle: ``tfidf_logreg.json`` holds
the vectorizer settings, the classes and the vocabulary (term i is the i-th feature), and
``weights.safetensors`` holds the idf vector, the coefficients and the intercepts. ``load``
rebuilds a predictor from the two files.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from forgeline.contracts.base import PluginConfig
from forgeline.contracts.baselines import Baseline, BaselineContext, BaselineResult

FORMAT = "tfidf_logreg"
SETTINGS_FILE = "tfidf_logreg.json"
WEIGHTS_FILE = "weights.safetensors"


class TfidfLogreg(Baseline):
    """TF-IDF character or word n-grams fed to a logistic regression (scikit-learn)."""

    name = "tfidf_logreg"

    class Config(PluginConfig):
        analyzer: Literal["char_wb", "char", "word"] = Field(
            "char_wb",
            description="N-grams of characters inside word boundaries (char_wb), of characters "
            "across them (char), or of words (word; needs spaces between words).",
        )
        ngram_min: int = Field(1, ge=1, le=10, description="Shortest n-gram.")
        ngram_max: int = Field(3, ge=1, le=10, description="Longest n-gram (>= ngram_min).")
        max_features: int = Field(
            200_000,
            ge=1,
            le=5_000_000,
            description="Keep only the most frequent n-grams, at most this many.",
        )
        sublinear_tf: bool = Field(
            True, description="Use 1 + log(tf) instead of the raw term frequency."
        )
        C: float = Field(
            4.0,
            gt=0,
            le=1e6,
            description="Inverse regularization strength of the logistic regression.",
        )
        max_iter: int = Field(
            1000, ge=1, le=100_000, description="Most iterations of the lbfgs solver."
        )
        seed: int = Field(0, ge=0, le=2**32 - 1, description="Random state of the solver.")

        @field_validator("ngram_max")
        @classmethod
        def _not_below_min(cls, value: int, info: ValidationInfo) -> int:
            low = info.data.get("ngram_min")
            if low is not None and value < low:
                raise ValueError(f"ngram_max ({value}) must be >= ngram_min ({low})")
            return value

    def fit_predict(
        self,
        train_texts: list[str],
        train_labels: list[str],
        eval_texts: list[str],
        ctx: BaselineContext,
    ) -> BaselineResult:
        from sklearn.linear_model import LogisticRegression

        c = self.config
        vectorizer = _vectorizer(_vectorizer_settings(c))
        started = time.perf_counter()
        features = vectorizer.fit_transform(train_texts)
        ctx.check_cancelled()
        classifier = LogisticRegression(C=c.C, max_iter=c.max_iter, random_state=c.seed)
        classifier.fit(features, train_labels)
        seconds = time.perf_counter() - started
        ctx.check_cancelled()
        predictions = [str(p) for p in classifier.predict(vectorizer.transform(eval_texts))]
        details = {
            "num_features": int(features.shape[1]),
            "iterations": int(max(classifier.n_iter_)),
        }
        if ctx.output_dir is None:
            return BaselineResult(predictions, seconds, details=details)
        save(vectorizer, classifier, _vectorizer_settings(c), ctx.output_dir)
        return BaselineResult(predictions, seconds, model_format=FORMAT, details=details)

    def predict_saved(self, folder: Path, texts: list[str]) -> list[str]:
        return load(folder).predict(texts)


def _vectorizer_settings(c: TfidfLogreg.Config) -> dict[str, Any]:
    return {
        "analyzer": c.analyzer,
        "ngram_range": [c.ngram_min, c.ngram_max],
        "max_features": c.max_features,
        "sublinear_tf": c.sublinear_tf,
    }


def _vectorizer(settings: dict[str, Any], vocabulary: dict[str, int] | None = None):
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(
        analyzer=settings["analyzer"],
        ngram_range=tuple(settings["ngram_range"]),
        max_features=None if vocabulary is not None else settings["max_features"],
        sublinear_tf=settings["sublinear_tf"],
        vocabulary=vocabulary,
    )


def save(vectorizer, classifier, settings: dict[str, Any], folder: Path) -> None:
    """Writes a fitted vectorizer and classifier as JSON + safetensors (no pickle)."""
    import numpy as np
    from safetensors.numpy import save_file

    terms = [""] * len(vectorizer.vocabulary_)
    for term, index in vectorizer.vocabulary_.items():
        terms[index] = term
    document = {
        "format": FORMAT,
        "version": 1,
        "vectorizer": settings,
        "classes": [str(c) for c in classifier.classes_],
        "terms": terms,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SETTINGS_FILE).write_text(json.dumps(document, ensure_ascii=False), "utf-8")
    save_file(
        {
            "idf": np.ascontiguousarray(vectorizer.idf_, dtype=np.float64),
            "coef": np.ascontiguousarray(classifier.coef_, dtype=np.float64),
            "intercept": np.ascontiguousarray(classifier.intercept_, dtype=np.float64),
        },
        str(folder / WEIGHTS_FILE),
    )


class TfidfLogregModel:
    """A stored tfidf_logreg model, rebuilt from its JSON and safetensors files."""

    def __init__(self, folder: Path) -> None:
        import numpy as np
        from safetensors.numpy import load_file
        from sklearn.linear_model import LogisticRegression

        document = json.loads((folder / SETTINGS_FILE).read_text("utf-8"))
        if document.get("format") != FORMAT:
            raise ValueError(f"{folder} does not hold a {FORMAT} model")
        weights = load_file(str(folder / WEIGHTS_FILE))
        terms = document["terms"]
        self.vectorizer = _vectorizer(
            document["vectorizer"], {term: i for i, term in enumerate(terms)}
        )
        self.vectorizer.idf_ = weights["idf"]
        self.classifier = LogisticRegression()
        self.classifier.classes_ = np.array(document["classes"])
        self.classifier.coef_ = weights["coef"]
        self.classifier.intercept_ = weights["intercept"]
        self.classifier.n_features_in_ = len(terms)
        self.labels: list[str] = list(document["classes"])

    def predict(self, texts: list[str]) -> list[str]:
        return [str(p) for p in self.classifier.predict(self.vectorizer.transform(texts))]


def load(folder: Path) -> TfidfLogregModel:
    """A predictor from a folder that ``TfidfLogreg`` stored."""
    return TfidfLogregModel(Path(folder))
