"""Between a scan's grid and the network's grid, in memory proportional to the scan (not to scan × classes).

MONAI's Orientation + Spacing define the network grid; they run lazily here, so no voxel is touched. The voxels
are then resampled in chunks with the arithmetic of MONAI's Spacing (voxel centres, trilinear, border padding,
float64), so the network sees the same input as through ``infer_transforms`` without the full-resolution float32
and float64 copies of the scan. Class scores come back to the scan's grid with :class:`LabelResampler`, slab by
slab as the sliding window finishes them, without any per-class volume at full resolution.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch

from arena_seg.models.spec import Preprocessing

#: MONAI's tolerance under which Spacing leaves an image on its own grid (monai.data.utils.AFFINE_TOL)
AFFINE_TOL = 1e-3
#: cell value of a network cell whose 8 corners do not share one class (masks are uint8, classes < 255)
MIXED = 255
_CHUNK = 2**20  # voxels per chunk of per-voxel float64 work (~10 such arrays live: ~80 MB)


def network_grid(shape: Sequence[int], affine: np.ndarray, pre: Preprocessing) -> tuple[tuple[int, ...], np.ndarray]:
    """Shape and RAS affine of the grid the network runs on: MONAI Orientation + Spacing, evaluated lazily on a
    zero-stride stand-in of the scan (no memory), so the grid is exactly the one ``infer_transforms`` makes."""
    from monai import transforms as mt
    from monai.data import MetaTensor

    stand_in = MetaTensor(torch.zeros((), dtype=torch.uint8).expand(1, *shape),
                          affine=torch.as_tensor(np.asarray(affine), dtype=torch.float64))
    for t in (mt.Orientation(axcodes=pre.orientation, lazy=True),
              mt.Spacing(pixdim=pre.spacing, mode="bilinear", lazy=True)):
        stand_in = t(stand_in)
    out_shape = tuple(int(s) for s in stand_in.peek_pending_shape())
    return out_shape, np.asarray(stand_in.peek_pending_affine(), dtype=np.float64)


def voxel_map(src_affine: np.ndarray, dst_affine: np.ndarray) -> np.ndarray:
    """4×4 map from dst voxel indices to src voxel indices (both grids' voxel centres)."""
    return np.linalg.solve(np.asarray(src_affine, np.float64), np.asarray(dst_affine, np.float64))


def _snap_lattice(xform: np.ndarray, src_shape: Sequence[int], dst_shape: Sequence[int]) -> np.ndarray:
    """MONAI skips resampling when the grids agree within AFFINE_TOL; the equivalent here is to round a map
    that takes voxel centres onto voxel centres (a signed permutation plus an integer shift) to that map."""
    rounded = np.round(xform)
    lin = rounded[:3, :3]
    is_perm = np.all(np.abs(lin).sum(0) == 1) and np.all(np.abs(lin).sum(1) == 1)
    if not (is_perm and np.allclose(xform, rounded, atol=AFFINE_TOL)):
        return xform
    perm = np.abs(lin).argmax(0)  # dst axis d reads src axis perm[d]
    if any(int(src_shape[perm[d]]) != int(dst_shape[d]) for d in range(3)):
        return xform
    return rounded


def _lerp_index(coord: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(i0, i1, w1) of linear interpolation at voxel coordinates ``coord`` (float64) along an axis of ``size``
    voxels, with border padding: the coordinate is clamped to [0, size - 1], as grid_sample(padding="border")."""
    c = coord.clamp(0, size - 1)
    i0 = c.floor().clamp(max=max(size - 2, 0))
    w1 = c - i0
    i0 = i0.long()
    return i0, (i0 + 1).clamp(max=size - 1), w1


def _nearest(coord: torch.Tensor, size: int) -> torch.Tensor:
    """Nearest voxel index along an axis of ``size`` voxels, border padding."""
    return torch.floor(coord.clamp(0, size - 1) + 0.5).long().clamp(max=size - 1)


def _flat(array: np.ndarray) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """A 1-D torch view of a C- or Fortran-ordered array (no copy) and the element strides of its 3 axes."""
    if not (array.flags.c_contiguous or array.flags.f_contiguous):
        array = np.ascontiguousarray(array)
    order = "C" if array.flags.c_contiguous else "F"
    flat = torch.from_numpy(array.reshape(-1, order=order))
    strides = tuple(s // array.itemsize for s in array.strides)
    return flat, strides  # type: ignore[return-value]


def resample_image(array: np.ndarray, src_affine: np.ndarray, dst_shape: Sequence[int], dst_affine: np.ndarray,
                   chunk: int = _CHUNK, mode: str = "bilinear") -> torch.Tensor:
    """Resampling of a scan (X, Y, Z; any numeric dtype) onto the grid (``dst_shape``, ``dst_affine``): float32
    (X', Y', Z'). ``mode="bilinear"`` (trilinear) gives MONAI Orientation + Spacing(bilinear)'s values to float64
    rounding, ``"nearest"`` Spacing(nearest)'s (for label maps); works chunk by chunk of the output, so the scan
    is never copied as floats."""
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}")
    dst_shape = tuple(int(s) for s in dst_shape)
    xform = _snap_lattice(voxel_map(src_affine, dst_affine), array.shape, dst_shape)
    if dst_shape == tuple(array.shape) and np.array_equal(xform, np.eye(4)):
        return torch.from_numpy(np.asarray(array, dtype=np.float32))
    order = _axis_order(xform)
    if order is not None:
        return _resample_separable(array, xform, order, dst_shape, chunk, mode)
    flat, strides = _flat(array)
    xf = torch.as_tensor(xform, dtype=torch.float64)
    out = torch.empty(dst_shape, dtype=torch.float32)
    out_flat = out.view(-1)
    _, ny, nz = dst_shape
    for start in range(0, out.numel(), chunk):
        idx = torch.arange(start, min(start + chunk, out.numel()), dtype=torch.int64)
        ijk = (idx // (ny * nz), (idx // nz) % ny, idx % nz)
        del idx
        coords = []
        for a in range(3):
            coord = xf[a, 3] + sum(xf[a, d] * ijk[d] for d in range(3) if xf[a, d] != 0)
            if not isinstance(coord, torch.Tensor):  # an axis no output axis moves along
                coord = torch.full((ijk[0].numel(),), float(coord), dtype=torch.float64)
            coords.append(coord)
        del ijk
        if mode == "nearest":
            offset = sum(_nearest(coords[a], array.shape[a]) * strides[a] for a in range(3))
            out_flat[start:start + offset.numel()] = flat[offset].float()
            continue
        corners = [_lerp_index(coords[a], array.shape[a]) for a in range(3)]
        n = coords[0].numel()
        del coords
        acc = torch.zeros(n, dtype=torch.float64)
        for bits in range(8):
            offset, weight = 0, 1.0
            for a in range(3):
                i0, i1, w1 = corners[a]
                hi = (bits >> a) & 1
                offset = offset + (i1 if hi else i0) * strides[a]
                weight = weight * (w1 if hi else 1.0 - w1)
            acc += weight * flat[offset].double()
        out_flat[start:start + acc.numel()] = acc.float()
    return out


def _resample_separable(array: np.ndarray, xform: np.ndarray, order: tuple[int, int, int],
                        dst_shape: tuple[int, ...], chunk: int, mode: str) -> torch.Tensor:
    """:func:`resample_image` for an axis-aligned map (src axis a follows dst axis ``order[a]``): trilinear
    interpolation is three linear ones in turn (the same float64 sums in another order), so each output slab
    along dst axis 0 reads two scan slices per row instead of gathering 8 corners per voxel (~5× less CPU)."""
    if any(st < 0 for st in array.strides):  # torch cannot view a reversed numpy array
        array = np.ascontiguousarray(array)
    with warnings.catch_warnings():  # a read-only memory map is only ever read here
        warnings.simplefilter("ignore", UserWarning)
        src = torch.from_numpy(array)
    axes = []
    for a in range(3):
        d = order[a]
        coord = xform[a, d] * torch.arange(dst_shape[d], dtype=torch.float64) + xform[a, 3]
        if mode == "nearest":
            i = _nearest(coord, array.shape[a])
            axes.append((i, i, None))
        else:
            axes.append(_lerp_index(coord, array.shape[a]))
    first = order.index(0)  # the scan axis that dst axis 0 runs along
    plane = int(np.prod([array.shape[a] for a in range(3) if a != first]))
    step = max(1, chunk // max(plane, 1))
    # dst axes of the interpolated block, whose axes are the scan's: permute them into dst order at the end
    perm = tuple(int(np.argsort(order)[d]) for d in range(3))
    out = torch.empty(dst_shape, dtype=torch.float32)
    for r0 in range(0, dst_shape[0], step):
        r1 = min(r0 + step, dst_shape[0])
        block = None
        for a in (first, *[a for a in range(3) if a != first]):
            i0, i1, w1 = axes[a]
            if a == first:
                i0, i1, w1 = i0[r0:r1], i1[r0:r1], None if w1 is None else w1[r0:r1]
            base = src if block is None else block
            lo = base.index_select(a, i0)
            if w1 is None:  # nearest: the voxel itself
                block = lo if block is not None else lo.to(torch.float64)
                continue
            shape = [1, 1, 1]
            shape[a] = -1
            w = w1.view(shape)
            block = lo.double() * (1.0 - w) + base.index_select(a, i1).double() * w
        out[r0:r1] = block.permute(perm).float()
    return out


def _axis_order(xform: np.ndarray, tol: float = 1e-6) -> tuple[int, int, int] | None:
    """For an axis-aligned map (each network axis moves along exactly one scan axis: any flips, permutations and
    spacings, also rotated scans), the scan axis of each network axis; None for a sheared map."""
    lin = np.abs(xform[:3, :3])
    order = lin.argmax(1)
    if sorted(order.tolist()) != [0, 1, 2]:
        return None
    off = lin.copy()
    off[np.arange(3), order] = 0
    return tuple(int(o) for o in order) if np.all(off <= tol * lin.max()) else None


def _cells(labels: torch.Tensor) -> torch.Tensor:
    """Class of each interpolation cell (the 2×2×2 voxels from (i, j, k) up), or MIXED where its corners differ.
    (n, Y, Z) -> (max(n-1, 1), max(Y-1, 1), max(Z-1, 1)); an axis of one voxel has one cell."""
    size = [max(s - 1, 1) for s in labels.shape]
    base = labels[: size[0], : size[1], : size[2]]
    same = torch.ones_like(base, dtype=torch.bool)
    for bits in range(1, 8):
        lo = [min((bits >> a) & 1, labels.shape[a] - 1) for a in range(3)]
        same &= labels[lo[0]: lo[0] + size[0], lo[1]: lo[1] + size[1], lo[2]: lo[2] + size[2]] == base
    return torch.where(same, base, torch.full_like(base, MIXED))


def _interpolated_argmax(scores: torch.Tensor, corners: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                         chunk_elements: int = 2**22) -> torch.Tensor:
    """Argmax over classes of the trilinear interpolation of ``scores`` (K, X, Y, Z) at N points given by their
    per-axis (i0, i1, w1) (each (N,)); float64 sums, (N,) uint8."""
    n, k = corners[0][0].numel(), scores.shape[0]
    out = torch.empty(n, dtype=torch.uint8, device=scores.device)
    step = max(1, chunk_elements // k)
    for s in range(0, n, step):
        part = [(i0[s:s + step], i1[s:s + step], w1[s:s + step]) for i0, i1, w1 in corners]
        acc = torch.zeros(k, part[0][0].numel(), dtype=torch.float64, device=scores.device)
        for bits in range(8):
            index, weight = [], 1.0
            for a in range(3):
                i0, i1, w1 = part[a]
                hi = (bits >> a) & 1
                index.append(i1 if hi else i0)
                weight = weight * (w1 if hi else 1.0 - w1)
            acc += weight * scores[:, index[0], index[1], index[2]].double()
        out[s:s + step] = acc.argmax(0).to(torch.uint8)
    return out


class LabelResampler:
    """The mask on the scan's grid from class scores on the network grid that arrive slab by slab along network
    axis 0 (:meth:`add`), as MONAI's Invertd of the scores followed by argmax would give it.

    ``mode="linear"``: argmax of the trilinearly interpolated scores (Invertd bilinear, then argmax). Where the 8
    network voxels around a scan voxel share their argmax, every convex combination of their scores has that same
    argmax, so the class is looked up; only scan voxels between differing classes interpolate all K scores.
    ``mode="nearest"``: the nearest network voxel's argmax (Invertd nearest of the label map).
    For an axis-aligned map (:func:`_axis_order`) slabs are consumed as they come and only the scan-sized uint8
    mask is kept; for a sheared one :attr:`streaming` is False and :meth:`add` needs every slice at once.
    """

    def __init__(self, out_shape: Sequence[int], out_affine: np.ndarray, net_shape: Sequence[int],
                 net_affine: np.ndarray, mode: str = "linear") -> None:
        if mode not in ("linear", "nearest"):
            raise ValueError(f"mode must be 'linear' or 'nearest', got {mode!r}")
        self.mode = mode
        self.out_shape = tuple(int(s) for s in out_shape)
        self.net_shape = tuple(int(s) for s in net_shape)
        self.xform = voxel_map(net_affine, out_affine)  # scan voxel -> network voxel
        self.order = _axis_order(self.xform)
        self.mask = torch.zeros(self.out_shape, dtype=torch.uint8)
        self._done = None if self.order is None else torch.zeros(self.out_shape[self.order[0]], dtype=torch.bool)

    @property
    def streaming(self) -> bool:
        return self.order is not None

    def _axis(self, q: int, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(i0, i1, w1) along network axis q for scan indices ``index`` along the scan axis it follows; nearest mode
        gives (i, i, 0) with i the nearest voxel (halves up: MONAI's float path lands just above exact halves)."""
        o = self.order[q]
        coord = self.xform[q, o] * index.double() + self.xform[q, 3]
        if self.mode == "nearest":
            i = _nearest(coord, self.net_shape[q])
            return i, i, torch.zeros_like(coord)
        return _lerp_index(coord, self.net_shape[q])

    def add(self, scores: torch.Tensor, start: int) -> None:
        """Scores (K, n, Y, Z) of network slices [start, start + n), final. Scan slices whose network neighbours
        all lie in [start, start + n) are written; send each slab with the last slice of the one before."""
        if self.order is None:
            if start != 0 or scores.shape[1] != self.net_shape[0]:
                raise ValueError("a sheared scan-to-network map needs all network slices in one call")
            self._add_general(scores)
            return
        labels = scores.argmax(0).to(torch.uint8)
        table = _cells(labels) if self.mode == "linear" else labels
        o0 = self.order[0]
        scan = torch.arange(self.out_shape[o0])
        i0, i1, _ = self._axis(0, scan)
        todo = (~self._done) & (i1 < start + scores.shape[1])
        if not bool(todo.any()):
            return
        if bool((i0[todo] < start).any()):
            raise ValueError(f"slab from network slice {start} misses a slice before it; send the previous last one")
        rows = todo.nonzero().squeeze(1)
        other = [self._axis(q, torch.arange(self.out_shape[self.order[q]])) for q in (1, 2)]
        plane = self.out_shape[self.order[1]] * self.out_shape[self.order[2]]
        step = max(1, (4 * _CHUNK) // plane)
        for r0 in range(int(rows[0]), int(rows[-1]) + 1, step):
            r = torch.arange(r0, min(r0 + step, int(rows[-1]) + 1))
            self._write_rows(scores, table, start, r, other)
        self._done |= todo

    def _write_rows(self, scores, table, start, rows, other) -> None:
        """Scan slices ``rows`` (along the scan axis of network axis 0): class looked up per cell, interpolated
        where the cell is mixed."""
        device = scores.device
        axes = [self._axis(0, rows), *other]
        shape = [1, 1, 1]
        index = []
        for q in range(3):
            view = list(shape)
            view[self.order[q]] = -1
            i0 = axes[q][0] - (start if q == 0 else 0)
            index.append(i0.to(device).view(view))
        chunk = table[index[0], index[1], index[2]]
        if self.mode == "linear":
            mixed = (chunk == MIXED).nonzero()
            if mixed.numel():
                corners = []
                for q in range(3):
                    pos = mixed[:, self.order[q]].cpu()
                    i0, i1, w1 = (t[pos] for t in axes[q])
                    shift = start if q == 0 else 0
                    corners.append(((i0 - shift).to(device), (i1 - shift).to(device), w1.to(device)))
                chunk[mixed[:, 0], mixed[:, 1], mixed[:, 2]] = _interpolated_argmax(scores, corners)
        self.mask.narrow(self.order[0], int(rows[0]), rows.numel()).copy_(chunk.cpu())

    def _add_general(self, scores: torch.Tensor) -> None:
        """Any affine map: per-voxel coordinates, chunk by chunk of the scan."""
        device = scores.device
        labels = scores.argmax(0).to(torch.uint8)
        table = _cells(labels) if self.mode == "linear" else labels
        xf = torch.as_tensor(self.xform, dtype=torch.float64)
        flat = self.mask.view(-1)
        _, ny, nz = self.out_shape
        for start in range(0, flat.numel(), _CHUNK):
            idx = torch.arange(start, min(start + _CHUNK, flat.numel()))
            ijk = (idx // (ny * nz), (idx // nz) % ny, idx % nz)
            axes = []
            for q in range(3):
                coord = xf[q, 3] + xf[q, 0] * ijk[0] + xf[q, 1] * ijk[1] + xf[q, 2] * ijk[2]
                if self.mode == "nearest":
                    i = _nearest(coord, self.net_shape[q])
                    axes.append((i, i, torch.zeros_like(coord)))
                else:
                    axes.append(_lerp_index(coord, self.net_shape[q]))
            out = table[axes[0][0].to(device), axes[1][0].to(device), axes[2][0].to(device)]
            if self.mode == "linear":
                mixed = (out == MIXED).nonzero().squeeze(1)
                if mixed.numel():
                    pos = mixed.cpu()
                    corners = [tuple(t[pos].to(device) for t in axis) for axis in axes]
                    out[mixed] = _interpolated_argmax(scores, corners)
            flat[start:start + idx.numel()] = out.cpu()

    def result(self) -> np.ndarray:
        """The uint8 mask (X, Y, Z) on the scan's grid; raises if slices were never covered."""
        if self._done is not None and not bool(self._done.all()):
            raise RuntimeError(f"{int((~self._done).sum())} scan slices never received their network slices")
        return self.mask.numpy()
