"""A gallery PNG of synthetic scans beside the real one: what the foundation network learned from, to look at."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_gallery(out: str | Path, scans: list[tuple[str, str | Path]], window: tuple[float, float] = (-175, 250),
                  axial_at: float = 0.7) -> Path:
    """One column per (title, NIfTI path): an axial slice (at ``axial_at`` of the Z range) over a coronal one,
    in the network's HU window. matplotlib is needed (the benchmarks' plotting extra)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import nibabel as nib

    from arena_seg.data.synth import to_ras

    fig, axes = plt.subplots(2, len(scans), figsize=(2.4 * len(scans), 4.6), squeeze=False)
    for col, (title, path) in enumerate(scans):
        img = nib.load(str(path))
        array, _ = to_ras(np.asarray(img.dataobj, np.float32), img.affine)
        zooms = img.header.get_zooms()[:3]
        axial = array[:, :, int(axial_at * (array.shape[2] - 1))].T
        coronal = array[:, array.shape[1] // 2, :].T
        for row, (sl, aspect) in enumerate(((axial, zooms[1] / zooms[0]), (coronal, zooms[2] / zooms[0]))):
            ax = axes[row, col]
            ax.imshow(np.clip(sl, *window), cmap="gray", origin="lower", aspect=aspect, vmin=window[0],
                      vmax=window[1])
            ax.set_axis_off()
        axes[0, col].set_title(title, fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=70)
    plt.close(fig)
    return out
