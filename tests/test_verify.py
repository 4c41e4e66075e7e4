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


@pytest.mark.parametrize("photos, lost", [(100, 1), (50, 1), (300, 3), (200, 2), (1000, 3)])
def test_a_drop_of_exactly_the_budget_meets_it(photos, lost):
    """86 -> 85 of 100 right is a drop of exactly 1 point: it meets the default 1-point int8 budget.
    (0.86 - 0.85 is 0.010000000000000009, so the difference of the accuracies failed such artifacts.)"""
    from edge.formats import COMPRESSED_BUDGET, Budget

    labels = np.zeros(photos, int)
    reference = np.tile([0.9, 0.1], (photos, 1))
    reference[: photos // 7] = [0.1, 0.9]  # some wrong for both
    candidate = reference.copy()
    candidate[photos // 7: photos // 7 + lost] = [0.4, 0.6]  # ... and ``lost`` more for the candidate
    result = compare(reference, candidate, labels)
    expected = lost * 100 / photos
    assert result.drop_pts == expected
    budget = Budget(max_drop_pts=expected) if expected != 1 else COMPRESSED_BUDGET
    assert budget.failures(result.agreement, result.max_prob_diff, result.drop_pts) == []
    assert Budget(max_drop_pts=expected - 0.01).failures(1.0, 0.0, result.drop_pts)  # one photo more is over
