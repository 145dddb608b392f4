"""One request, all organs: the foundation's organs plus every learned organ of a library, in one label map.

Every network of a library shares the foundation's preprocessing, so all of them run on the same network grid:
the foundation first (its argmax and that class's probability per voxel), then each version that serves a learned
organ (each a merged copy of foundation + adapter, loaded once and kept). A voxel becomes a learned organ where
that version's argmax is the organ and its probability is higher than the best organ's so far; so overlaps go to
the higher probability, and an organ's voxels elsewhere stay the foundation's. Background does not compete: where
the foundation's argmax is background the best so far is 0, so a learned organ's voxels are the organ wherever its
version says so (a foundation that never saw the organ calls it background, often with a higher probability than
a few-shot adapter gives the organ, and would otherwise hide it). The combined label is brought back to the scan's
grid nearest-neighbour, chunk by chunk (only a uint8 mask at full resolution).

Output ids: the foundation's organs keep their own values; a learned organ that the foundation also has takes the
foundation's value; a novel organ takes ``max(foundation values) + its library id`` (stable: the library id never
changes, nor does the foundation of a library).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from arena_seg.inference.predictor import Predictor
from arena_seg.inference.resample import voxel_map
from arena_seg.library.store import OrganLibrary, Version, check_foundation

logger = logging.getLogger(__name__)


def output_ids(foundation: dict[str, int], library_ids: dict[str, int]) -> dict[str, int]:
    """{organ: value in the combined mask} (see the module doc)."""
    top = max(foundation.values(), default=0)
    out = dict(foundation)
    for organ, lid in library_ids.items():
        out.setdefault(organ, top + lid)
    return out


class LibraryPredictor(Predictor):
    """A Predictor (same interface: ``labels``, ``predict_array``) over a foundation and a library's versions."""

    def __init__(self, foundation: Predictor, library: OrganLibrary, pins: dict[str, str] | None = None,
                 foundation_sha256: str | None = None, organs: Iterable[str] | None = None,
                 cache: dict[str, Predictor] | None = None, max_loaded: int | None = None) -> None:
        """``cache`` ({version id: Predictor}) lets several LibraryPredictors (other pins) share loaded versions;
        ``max_loaded`` bounds how many versions stay loaded (None: all, the faster; 1: one at a time, reloaded
        when its turn comes, the smaller)."""
        self.__dict__.update(foundation.__dict__)  # device, model, spec, windows, interpolation: the foundation's
        self.foundation, self.library = foundation, library
        chosen = library.resolve(pins)
        if organs is not None:
            wanted = set(organs)
            chosen = {o: v for o, v in chosen.items() if o in wanted}
        for version in {v.id: v for v in chosen.values()}.values():
            check_foundation(version, foundation_sha256 or library.foundation_sha256())
        self.served = {organ: version.id for organ, version in chosen.items()}
        self._versions: dict[str, tuple[Version, list[str]]] = {}
        for organ, version in chosen.items():
            self._versions.setdefault(version.id, (version, []))[1].append(organ)
        ids = library.ids()
        self._ids = output_ids(foundation.labels, {o: ids[o] for o in chosen})
        self._predictors: dict[str, Predictor] = {} if cache is None else cache
        self.max_loaded = max_loaded

    @property
    def labels(self) -> dict[str, int]:
        return dict(self._ids)

    def predictor(self, version: Version) -> Predictor:
        """The merged network of ``version`` on the foundation's device (loaded once)."""
        if version.id not in self._predictors:
            from arena_seg.models.registry import load_network

            model, spec = load_network(version.folder / "network")
            while self.max_loaded and len(self._predictors) >= self.max_loaded:
                self._predictors.pop(next(iter(self._predictors)))
            self._predictors[version.id] = Predictor(model, spec, device=self.device, amp=self.foundation.amp,
                                                     overlap=self.overlap, sw_batch_size=self.sw_batch_size)
        return self._predictors[version.id]

    @torch.no_grad()
    def predict_array(self, array: np.ndarray, affine: np.ndarray) -> np.ndarray:
        """Segment a CT volume (X, Y, Z) in HU with its RAS affine; a label map (uint8, or uint16 past 255)."""
        if array.ndim != 3:
            raise ValueError(f"a 3-D volume is needed, got shape {tuple(array.shape)}")
        image, net_affine = self.foundation.network_input(array, affine)
        best, score = _best_class(self.foundation, image)
        for version, organs in self._versions.values():
            predictor = self.predictor(version)
            values = {predictor.labels[o]: self._ids[o] for o in organs}  # this network's mask value → output id
            _overlay(predictor, image, values, best, score)
        del image, score
        return _to_scan_grid(best, net_affine, tuple(array.shape), affine)

    def predict_with_info(self, array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """The mask and what served it ({organ: version})."""
        return self.predict_array(array, affine), {"versions": dict(self.served)}


def _best_class(predictor: Predictor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(argmax (X, Y, Z) int16, its probability (X, Y, Z) float32, 0 where the argmax is background) of
    ``predictor`` on the network grid."""
    shape = tuple(image.shape[2:])
    best = torch.zeros(shape, dtype=torch.int16)
    score = torch.zeros(shape, dtype=torch.float32)

    def keep(probs: torch.Tensor, start: int) -> None:
        top, arg = probs.max(0)
        arg, top = arg.cpu(), top.cpu().float()
        best[start:start + probs.shape[1]] = arg.to(torch.int16)
        score[start:start + probs.shape[1]] = torch.where(arg == 0, 0.0, top)  # background (value 0) competes not

    predictor._stream(image, keep)
    return best, score


def _overlay(predictor: Predictor, image: torch.Tensor, values: dict[int, int], best: torch.Tensor,
             score: torch.Tensor) -> None:
    """Where ``predictor``'s argmax is one of ``values`` (its mask value → output id) with a higher probability
    than ``score``, write the output id into ``best`` and the probability into ``score`` (in place)."""

    def keep(probs: torch.Tensor, start: int) -> None:
        top, arg = probs.max(0)
        top, arg = top.cpu().float(), arg.cpu()
        rows = slice(start, start + probs.shape[1])
        for value, out_id in values.items():
            win = (arg == value) & (top > score[rows])
            best[rows][win] = out_id
            score[rows][win] = top[win]

    predictor._stream(image.to(predictor.device), keep)


def _to_scan_grid(labels: torch.Tensor, net_affine: np.ndarray, shape: tuple[int, ...], affine: np.ndarray,
                  chunk: int = 16) -> np.ndarray:
    """``labels`` (network grid) on the scan's grid, nearest neighbour, ``chunk`` scan slices at a time."""
    dtype = np.uint8 if int(labels.max()) < 256 else np.uint16
    out = np.zeros(shape, dtype=dtype)
    xform = voxel_map(net_affine, affine)  # scan voxel → network voxel
    src = labels.numpy()
    ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    for k0 in range(0, shape[2], chunk):
        ks = np.arange(k0, min(k0 + chunk, shape[2]))
        pts = np.stack([np.repeat(ii[..., None], len(ks), 2), np.repeat(jj[..., None], len(ks), 2),
                        np.broadcast_to(ks, (*ii.shape, len(ks)))], axis=0).reshape(3, -1).astype(np.float64)
        idx = xform[:3, :3] @ pts + xform[:3, 3:4]
        idx = np.floor(idx + 0.5).astype(np.int64)  # ties upward, as the Predictor's nearest mode (and SciPy)
        for axis in range(3):
            np.clip(idx[axis], 0, src.shape[axis] - 1, out=idx[axis])
        out[:, :, ks] = src[idx[0], idx[1], idx[2]].reshape(shape[0], shape[1], len(ks)).astype(dtype)
    return out
