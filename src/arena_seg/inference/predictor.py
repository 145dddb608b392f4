"""Sliding-window prediction of a whole CT volume, with the mask returned on the input's own grid.

Memory stays proportional to the scan, not to scan × classes: the scan is resampled to the network grid chunk by
chunk (:func:`~arena_seg.inference.resample.resample_image`, no full-resolution float copy), the sliding window
hands out probabilities slab by slab (:func:`~arena_seg.inference.sliding.stream_probabilities`, one window depth
of scores held) and each slab goes straight back to the scan's grid
(:class:`~arena_seg.inference.resample.LabelResampler`, uint8 only at full resolution). The masks are those of
MONAI's ``infer_transforms`` → ``sliding_window_inference`` → ``Invertd`` → argmax up to float rounding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from arena_seg.data.transforms import intensity_transforms
from arena_seg.data.volumes import read_volume
from arena_seg.files import write_json, write_nifti_mask
from arena_seg.inference.resample import LabelResampler, network_grid, resample_image
from arena_seg.inference.sliding import stream_probabilities
from arena_seg.models.registry import FoundationSpec

#: interpolate probabilities back to the scan (smoother than the nearest label) when classes × scan voxels stay
#: under this, else resample the network's label map nearest-neighbour: the former rule, so masks stay the same.
#: ``interpolation="linear"`` always interpolates: Dice +0.006..0.025 on 0.8 mm phantoms with `default`, but
#: about 1.5× the CPU time on a 512² × 400 scan (the voxels between classes interpolate all K scores)
LINEAR_MAX_ELEMENTS = 2**28


class Predictor:
    """Holds one network on one device and segments volume after volume (load once, predict many)."""

    def __init__(
        self,
        model: nn.Module,
        spec: FoundationSpec,
        device: str | torch.device = "auto",
        amp: bool = True,
        overlap: float = 0.25,
        sw_batch_size: int | None = None,
        interpolation: str = "auto",
    ) -> None:
        if isinstance(device, str):
            from arena_seg.devices import resolve_device

            device = resolve_device(device)
        if interpolation not in ("auto", "linear", "nearest"):
            raise ValueError(f"interpolation must be auto, linear or nearest, got {interpolation!r}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.spec = spec
        self.amp = amp and self.device.type == "cuda"
        self.overlap = overlap
        # one window at a time on a CPU (no faster in pairs there, and each 96³ output of 105 classes is 370 MB)
        self.sw_batch_size = sw_batch_size or (2 if self.device.type == "cuda" else 1)
        self.interpolation = interpolation
        self.intensity = intensity_transforms(spec.preprocessing)

    @property
    def labels(self) -> dict[str, int]:
        """{organ name: value in the mask}; heads without a background channel shift their channels by one."""
        shift = 1 if self.spec.background_channel is None else 0
        return {name: channel + shift for name, channel in self.spec.labels.items()}

    @property
    def channels(self) -> int:
        """Mask values the probabilities have (a sigmoid head gets a constant 0.5 background channel first)."""
        return self.spec.out_channels + (1 if self.spec.background_channel is None else 0)

    def interpolation_for(self, voxels: int) -> str:
        """``linear`` or ``nearest`` for a scan of ``voxels`` voxels (see LINEAR_MAX_ELEMENTS)."""
        if self.interpolation != "auto":
            return self.interpolation
        return "linear" if self.channels * voxels <= LINEAR_MAX_ELEMENTS else "nearest"

    def network_input(self, array: np.ndarray, affine: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """The preprocessed volume (1, 1, X, Y, Z) on the network grid, and that grid's affine."""
        shape, net_affine = network_grid(array.shape, affine, self.spec.preprocessing)
        image = resample_image(array, affine, shape, net_affine)[None]
        image = torch.as_tensor(self.intensity({"image": image})["image"]).float()
        return image[None].to(self.device), net_affine

    @torch.no_grad()
    def probabilities(self, image: torch.Tensor) -> torch.Tensor:
        """Class probabilities (1, C, X, Y, Z) of a preprocessed (1, 1, X, Y, Z) volume (Gaussian-blended sliding
        window); channel i is mask value i (:attr:`labels`). Holds C × the grid: for small volumes and callers
        that need every probability (the uncertainty strategy); :meth:`predict_array` does not."""
        full = torch.empty((self.channels, *image.shape[2:]), dtype=torch.float32)

        def keep(probs: torch.Tensor, start: int) -> None:
            full[:, start:start + probs.shape[1]] = probs.cpu()

        self._stream(image.to(self.device), keep)
        return full[None]

    def _stream(self, image: torch.Tensor, consume) -> None:
        activation = "sigmoid" if self.spec.background_channel is None else "softmax"
        stream_probabilities(self.model, image, self.spec.preprocessing.patch, self.channels, consume,
                             overlap=self.overlap, sw_batch_size=self.sw_batch_size, activation=activation,
                             amp=self.amp)

    def predict_array(self, array: np.ndarray, affine: np.ndarray) -> np.ndarray:
        """Segment a CT volume (X, Y, Z) in HU with its RAS affine; returns a uint8 label map of the same shape."""
        mask, _ = self._predict(array, affine, keep_probs=False)
        return mask

    def predict_array_with_probs(self, array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        """Like :meth:`predict_array`, also returning the softmax (C, x, y, z) on the network's grid."""
        return self._predict(array, affine, keep_probs=True)

    def predict(self, path: str | Path) -> np.ndarray:
        """Segment the volume file at ``path``; the mask is on the file's voxel grid."""
        volume = read_volume(path)
        return self.predict_array(volume.array, volume.affine)

    @torch.no_grad()
    def _predict(self, array: np.ndarray, affine: np.ndarray, keep_probs: bool):
        if array.ndim != 3:
            raise ValueError(f"a 3-D volume is needed, got shape {tuple(array.shape)}")
        image, net_affine = self.network_input(array, affine)
        net_shape = tuple(image.shape[2:])
        resampler = LabelResampler(array.shape, affine, net_shape, net_affine,
                                   mode=self.interpolation_for(int(np.prod(array.shape))))
        # every probability is kept only when asked for, or when a sheared scan needs them all at once
        full = (torch.empty((self.channels, *net_shape), dtype=torch.float32, device=self.device)
                if keep_probs or not resampler.streaming else None)

        def consume(probs: torch.Tensor, start: int) -> None:
            if full is not None:
                full[:, start:start + probs.shape[1]] = probs
            if resampler.streaming:
                resampler.add(probs, start)

        self._stream(image, consume)
        del image
        if not resampler.streaming:
            resampler.add(full, 0)
        mask = resampler.result()
        if mask.shape != tuple(array.shape):
            raise RuntimeError(f"mask has shape {mask.shape}, expected {tuple(array.shape)}")
        return mask, (full.cpu() if keep_probs else None)


def write_mask(mask: np.ndarray, affine: np.ndarray, out: str | Path, labels: dict[str, int]) -> tuple[Path, Path]:
    """Write ``mask`` as NIfTI (uint8) and its label map beside it as ``<name>.json`` ({organ: id}), atomically."""
    out = Path(out)
    write_nifti_mask(out, mask, affine)
    stem = out.name[: -len(".nii.gz")] if out.name.endswith(".nii.gz") else out.stem
    label_file = write_json(out.with_name(stem + ".json"), labels)
    return out, label_file
