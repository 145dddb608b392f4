"""The app benchmark scores the learned organ on the value infer `arena` gives it, not on 1 (the foundation's first
organ since the organ library serves the foundation's organs and the learned ones in one mask)."""

from __future__ import annotations

import numpy as np
import pytest

from arena_seg.bench.app_train import organ_value
from arena_seg.library import output_ids


def test_the_learned_organ_is_scored_on_its_library_id_not_on_1():
    foundation = {"liver": 1, "spleen": 2, "kidney": 3}
    params = {"label_names": output_ids(foundation, {"gallbladder": 1, "pancreas": 2})}
    assert organ_value(params, "pancreas") == 5 and organ_value(params, "gallbladder") == 4
    mask = np.array([0, 1, 1, 5, 5, 5, 4])  # liver on 1, pancreas on 5
    truth = np.array([0, 0, 0, 1, 1, 1, 0]).astype(bool)
    pred = mask == organ_value(params, "pancreas")
    assert (pred == truth).all() and not ((mask == 1) & truth).any()  # `mask == 1` would have scored the liver


def test_an_answer_without_the_organ_stops_the_benchmark_with_its_labels():
    with pytest.raises(SystemExit, match="names no 'pancreas'.*'liver'"):
        organ_value({"label_names": {"liver": 1}}, "pancreas")
