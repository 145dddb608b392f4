"""`torchrun --nproc_per_node 2 ... infer` (gloo on CPU) gives the same masks and report entries as one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch

from arena_seg.cli import main
from arena_seg.inference.distributed import shard


def test_round_robin_shares_cover_every_item_once():
    items = list(range(7))
    shares = [shard(items, r, 3) for r in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]


@pytest.mark.slow
def test_two_ranks_match_one_process(phantom_series, coarse_default, tmp_path):
    src = phantom_series / "dicom"
    inputs = ["--input", str(src / "phantom_000"), "--input", str(src / "phantom_001")]  # one series per rank
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun worker (OMP_NUM_THREADS=1): same arithmetic, same masks
    try:
        assert main(["infer", *inputs, "--output", str(tmp_path / "one"), "--device", "cpu", "--no-progress"]) == 0
    finally:
        torch.set_num_threads(threads)
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "arena_seg.cli", "infer", *inputs,
           "--output", str(tmp_path / "two"), "--device", "cpu", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.count("2 series: 2 done") == 1  # the summary comes from rank 0 only

    one, two = (json.loads((tmp_path / d / "report.json").read_text()) for d in ("one", "two"))
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert sorted(e["rank"] for e in two["series"]) == [0, 1]

    def same(e: dict) -> dict:
        return {k: v for k, v in e.items() if k not in ("timings", "rank", "memory")}  # per process

    assert [same(e) for e in one["series"]] == [same(e) for e in two["series"]]
    for e in one["series"]:
        a, b = (np.asarray(nib.load(tmp_path / d / e["outputs"]["nifti"]).dataobj) for d in ("one", "two"))
        np.testing.assert_array_equal(a, b)
        sa, sb = (pydicom.dcmread(tmp_path / d / e["outputs"]["seg"]) for d in ("one", "two"))
        assert sa.SOPInstanceUID == sb.SOPInstanceUID and sa.PixelData == sb.PixelData
