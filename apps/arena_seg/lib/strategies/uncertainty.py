"""Strategy `uncertainty`: the unlabelled scan the adapted model is least sure of is annotated next.

Score of a scan (0 = certain, 1 = uniform guess): the voxel entropy of the adapted model's softmax, divided by
log(C) (C classes incl. background), averaged over the *neighbourhood of the predicted organs* (the predicted
foreground on the network's grid, dilated by ``margin`` voxels). Averaging over the whole volume would be
dominated by confident background far from the organ. A scan where the model predicts no organ at all scores 1:
either the organ is missed there or absent, and both are worth a clinician's look. Scores are cached per (version,
scan); before the first good run the strategy falls back to the first unlabelled scan and says so.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import torch
import torch.nn.functional as F
from monailabel.interfaces.tasks.strategy import Strategy

from arena_seg.data.volumes import read_volume
from lib.errors import NoAdaptedModelError
from lib.models import ModelCache

logger = logging.getLogger(__name__)


def scan_uncertainty(probs: torch.Tensor, margin: int = 3) -> float:
    """Mean normalised entropy of ``probs`` (C, X, Y, Z) near the predicted foreground; 1.0 if none predicted."""
    probs = probs.float().clamp_min(1e-8)
    classes = probs.shape[0]
    entropy = -(probs * probs.log()).sum(0) / math.log(classes)
    foreground = probs.argmax(0) > 0
    if not bool(foreground.any()):
        return 1.0
    size = 2 * margin + 1
    region = F.max_pool3d(foreground[None, None].float(), size, stride=1, padding=margin)[0, 0] > 0
    return float(entropy[region].mean().clamp(0.0, 1.0))


class Uncertainty(Strategy):
    """Ranks unlabelled scans by the adapted model's uncertainty and returns the highest."""

    def __init__(self, models: ModelCache, margin: int = 3) -> None:
        super().__init__("Unlabelled scan the adapted model is least sure of (softmax entropy near the organ)")
        self.models = models
        self.margin = margin
        self._scores: dict[tuple[str, str, float], float] = {}

    def __call__(self, request: dict[str, Any], datastore: Any) -> dict[str, Any] | None:
        images = sorted(datastore.get_unlabeled_images())
        if not images:
            return None
        try:
            predictor, version = self.models.arena(request.get("version"), request.get("device"))
        except NoAdaptedModelError:
            logger.info("uncertainty: no adapted model yet; taking the first unlabelled scan")
            return {"id": images[0], "strategy_note": "no adapted model yet: first unlabelled scan"}
        scores = {image_id: self._score(predictor, version, image_id, datastore) for image_id in images}
        best = max(images, key=lambda i: (scores[i], i))
        logger.info("uncertainty (version %s): %s", version, {k: round(v, 4) for k, v in scores.items()})
        return {"id": best, "uncertainty": scores[best], "version": version,
                "ranking": sorted(scores, key=lambda i: -scores[i])[:10]}

    def _score(self, predictor: Any, version: str, image_id: str, datastore: Any) -> float:
        path = datastore.get_image_uri(image_id)
        key = (version, image_id, os.path.getmtime(path))
        if key not in self._scores:
            volume = read_volume(path)
            _, probs = predictor.predict_array_with_probs(volume.array, volume.affine)
            self._scores[key] = scan_uncertainty(probs, self.margin)
        return self._scores[key]
