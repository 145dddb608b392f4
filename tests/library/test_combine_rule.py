"""The combination rule on hand-made probabilities: a learned organ beats the foundation's background whatever its
probability, and a foundation organ only when more probable (regression: a foundation sure that a novel organ was
background hid every voxel of it, so infer `arena` returned none of an adapter that segments it with Dice 0.8)."""

from __future__ import annotations

import torch

from arena_seg.library.combine import _best_class, _overlay


class _Fixed:
    """A predictor whose sliding window yields fixed probabilities (C, X, Y, Z), in one chunk."""

    device = "cpu"

    def __init__(self, probs: list[list[float]]) -> None:
        self.probs = torch.tensor(probs).T.reshape(len(probs[0]), len(probs), 1, 1)  # rows are voxels

    def _stream(self, image: torch.Tensor, consume) -> None:
        consume(self.probs, 0)


def test_a_learned_organ_beats_background_and_only_less_probable_foundation_organs():
    image = torch.zeros((1, 1, 4, 1, 1))
    #                     bg    liver                                   voxel
    foundation = _Fixed([[0.99, 0.01],   # A: background, sure of it
                         [0.10, 0.90],   # B: liver, sure of it
                         [0.40, 0.60],   # C: liver, less sure
                         [0.95, 0.05]])  # D: background
    #                   bg    gallbladder
    version = _Fixed([[0.40, 0.60],   # A: gallbladder, unsure: still beats background
                      [0.30, 0.70],   # B: less probable than the liver there: the liver stays
                      [0.20, 0.80],   # C: more probable than the liver: gallbladder
                      [0.90, 0.10]])  # D: background for both
    best, score = _best_class(foundation, image)
    assert best.flatten().tolist() == [0, 1, 1, 0] and score.flatten().tolist()[0] == 0.0
    _overlay(version, image, {1: 9}, best, score)  # the version's value 1 → output id 9
    assert best.flatten().tolist() == [9, 1, 9, 0]
    assert torch.allclose(score.flatten(), torch.tensor([0.6, 0.9, 0.8, 0.0]))
