"""Sliding-window prediction of a whole CT volume, with the mask returned on the input's own grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from monai.data import MetaTensor
from monai.inferers import sliding_window_inference
from monai.transforms import Invertd
from torch import nn

from arena_seg.data.transforms import infer_transforms
from arena_seg.data.volumes import read_volume
from arena_seg.files import write_json, write_nifti_mask
from arena_seg.models.registry import FoundationSpec

#: above this many voxels × channels, probabilities are not resampled back (memory); the label map is instead
_MAX_PROB_ELEMENTS = 2**28


class Predictor:
    """Holds one network on one device and segments volume after volume (load once, predict many)."""

    def __init__(
        self,
        model: nn.Module,
        spec: FoundationSpec,
        device: str | torch.device = "auto",
        amp: bool = True,
        overlap: float = 0.25,
        sw_batch_size: int = 2,
    ) -> None:
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.spec = spec
        self.amp = amp and self.device.type == "cuda"
        self.overlap = overlap
        self.sw_batch_size = sw_batch_size
        self.preprocess = infer_transforms(spec.preprocessing)

    @property
    def labels(self) -> dict[str, int]:
        """{organ name: value in the mask}; heads without a background channel shift their channels by one."""
        shift = 1 if self.spec.background_channel is None else 0
        return {name: channel + shift for name, channel in self.spec.labels.items()}

    @torch.no_grad()
    def probabilities(self, image: torch.Tensor) -> torch.Tensor:
        """Class probabilities (1, C, X, Y, Z) of a preprocessed (1, 1, X, Y, Z) volume (Gaussian-blended sliding
        window); channel i is mask value i (:attr:`labels`)."""
        with torch.autocast(device_type=self.device.type, enabled=self.amp):
            logits = sliding_window_inference(
                image.to(self.device), self.spec.preprocessing.patch, self.sw_batch_size, self.model,
                overlap=self.overlap, mode="gaussian",
            )
        logits = torch.as_tensor(logits).float()
        if self.spec.background_channel is None:
            # one sigmoid per organ (FSEFT): a constant 0.5 background makes argmax pick an organ only above 0.5
            probs = torch.sigmoid(logits)
            return torch.cat([torch.full_like(probs[:, :1], 0.5), probs], dim=1)
        return torch.softmax(logits, dim=1)

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

    def _predict(self, array: np.ndarray, affine: np.ndarray, keep_probs: bool):
        image = MetaTensor(torch.as_tensor(np.asarray(array, dtype=np.float32))[None],
                           affine=torch.as_tensor(affine, dtype=torch.float64))
        data = self.preprocess({"image": image})
        probs = self.probabilities(data["image"].unsqueeze(0))[0].cpu()
        nearest = probs.numel() * array.size / max(1, data["image"][0].numel()) > _MAX_PROB_ELEMENTS
        # resampling probabilities (then argmax) gives smoother masks than resampling labels, when memory allows
        values = probs.argmax(0, keepdim=True).float() if nearest else probs
        data["pred"] = MetaTensor(values, affine=data["image"].affine, meta=data["image"].meta,
                                  applied_operations=data["image"].applied_operations)
        pred = Invertd(keys="pred", transform=self.preprocess, orig_keys="image", nearest_interp=nearest)(data)["pred"]
        mask = (pred[0].round() if nearest else pred.argmax(0)).cpu().numpy().astype(np.uint8)
        if mask.shape != tuple(array.shape):
            raise RuntimeError(f"inverted mask has shape {mask.shape}, expected {tuple(array.shape)}")
        return mask, (probs if keep_probs else None)


def write_mask(mask: np.ndarray, affine: np.ndarray, out: str | Path, labels: dict[str, int]) -> tuple[Path, Path]:
    """Write ``mask`` as NIfTI (uint8) and its label map beside it as ``<name>.json`` ({organ: id}), atomically."""
    out = Path(out)
    write_nifti_mask(out, mask, affine)
    stem = out.name[: -len(".nii.gz")] if out.name.endswith(".nii.gz") else out.stem
    label_file = write_json(out.with_name(stem + ".json"), labels)
    return out, label_file
