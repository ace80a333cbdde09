"""The confidence selector keeps what the model is unsure or wrong about, nothing else."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from forgeline.contracts.selectors import ScoredRows
from forgeline.plugins.selectors.basic import All, Confidence

ROWS = ScoredRows(
    np.array([[0.95, 0.05], [0.6, 0.4], [0.02, 0.98], [0.97, 0.03], [0.5, 0.5]]),
    [0, 0, 1, 1, 1],
)


def test_confidence_keeps_the_unsure_and_the_wrong():
    assert Confidence().select(ROWS) == [1, 3, 4]  # 0.6 and 0.5 are unsure, row 3 is wrong
    only_unsure = Confidence(Confidence.Config(keep_wrong=False))
    assert only_unsure.select(ROWS) == [1, 4]
    assert Confidence(Confidence.Config(threshold=1.0, keep_wrong=False)).select(ROWS) == [
        0,
        1,
        2,
        3,
        4,
    ]
    assert All().select(ROWS) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.01])
def test_a_threshold_out_of_range_is_refused(threshold):
    with pytest.raises(ValidationError, match="threshold"):
        Confidence.Config(threshold=threshold)
