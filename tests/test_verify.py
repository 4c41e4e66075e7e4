"""edge.verify.compare: the changed-answer breakdown beside agreement (which answers changed, and how sure the reference was)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.verify import UNSURE_MARGIN, compare, margins


def test_changed_answers_are_counted_by_how_sure_and_how_right_the_reference_was():
    reference = np.array([
        [0.90, 0.05, 0.05],  # sure, right; the candidate changes it
        [0.50, 0.45, 0.05],  # unsure (margin 0.05), wrong; the candidate changes it
        [0.40, 0.35, 0.25],  # unsure, right; unchanged
        [0.10, 0.80, 0.10],  # sure, right; unchanged
    ])
    candidate = np.array([
        [0.30, 0.60, 0.10],
        [0.45, 0.50, 0.05],
        [0.39, 0.36, 0.25],
        [0.05, 0.90, 0.05],
    ])
    labels = np.array([0, 1, 0, 1])
    result = compare(reference, candidate, labels)
    assert result.agreement == 0.5 and result.changed == 2
    assert result.changed_unsure == 1 and result.changed_reference_wrong == 1
    assert result.accuracy == result.reference_accuracy == 0.75  # one fixed, one broken: same accuracy
    assert set(result.to_dict()) >= {"changed", "changed_unsure", "changed_reference_wrong"}


def test_margins_and_the_threshold():
    probs = np.array([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4], [1.0, 0.0, 0.0]])
    assert margins(probs) == pytest.approx([0.5, 0.1, 1.0])
    assert margins(np.ones((2, 1))).tolist() == [1.0, 1.0]
    assert 0 < UNSURE_MARGIN < 1
    # exactly at the threshold counts as sure
    at = compare(np.array([[0.75, 0.25]]), np.array([[0.25, 0.75]]), np.array([0]))
    assert at.changed == 1 and at.changed_unsure == 0


def test_no_images_no_changes():
    result = compare(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0, int))
    assert result.changed == result.changed_unsure == result.changed_reference_wrong == 0
