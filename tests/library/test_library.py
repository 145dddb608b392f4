"""The organ library read from disk: organs and their versions, stable ids, pinning, one label map for the
foundation's organs plus every learned organ (checked against an independent combination), a foreign foundation
refused, and export/import through the CLI."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from arena_seg.cli import main
from arena_seg.commands.finetune import finetune_to_folder
from arena_seg.data.volumes import read_volume
from arena_seg.errors import InputError
from arena_seg.inference.loading import load_model, load_predictor
from arena_seg.inference.predictor import Predictor
from arena_seg.library import LibraryPredictor, OrganLibrary
from arena_seg.training.config import FinetuneConfig

COARSE = (12.0, 12.0, 12.0)
PATCH = (32, 32, 64)


pytestmark = pytest.mark.slow  # two fine-tuning runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory, phantom_dir, make_tiny_network) -> Iterator[dict[str, Path]]:
    """Two one-epoch ARENA runs on the coarse tiny network (the `default` foundation while this module runs):
    gallbladder, and pancreas + gallbladder."""
    network = make_tiny_network(spacing=COARSE, patch=PATCH)
    patch = pytest.MonkeyPatch()
    patch.setenv("ARENA_SEG_DEFAULT_MODEL", str(network))
    root = tmp_path_factory.mktemp("runs")
    images = [str(phantom_dir / "images" / f"phantom_00{i}.nii.gz") for i in range(2)]
    labels = [str(phantom_dir / "labels" / f"phantom_00{i}.nii.gz") for i in range(2)]
    config = FinetuneConfig(method="arena", rank=4, epochs=1, num_samples=1, seed=0)
    out = {}
    for name, organs in (("a", ["gallbladder"]), ("b", ["pancreas", "gallbladder"])):
        finetune_to_folder(images, labels, organs, root / name, config)
        out[name] = root / name
    yield out
    patch.undo()


def make_library(root: Path, runs: dict[str, Path], order: list[str]) -> OrganLibrary:
    for i, name in enumerate(order, start=1):
        shutil.copytree(runs[name], root / "versions" / f"v{i:03d}")
    return OrganLibrary(root)


def test_organs_versions_ids_and_pins(tmp_path, runs):
    library = make_library(tmp_path / "lib", runs, ["a", "b"])
    organs = library.organs()
    assert {o: [v.id for v in vs] for o, vs in organs.items()} == {"gallbladder": ["v001", "v002"],
                                                                   "pancreas": ["v002"]}
    assert library.assign_ids() == {"gallbladder": 1, "pancreas": 2}
    assert {o: v.id for o, v in library.resolve().items()} == {"gallbladder": "v002", "pancreas": "v002"}
    assert library.resolve({"gallbladder": "v001"})["gallbladder"].id == "v001"
    with pytest.raises(InputError, match="no version 'v009'"):
        library.resolve({"gallbladder": "v009"})
    # an organ keeps its id when later runs add organs in another order
    shutil.copytree(runs["a"], library.versions_dir / "v003")
    manifest = json.loads((library.versions_dir / "v003" / "manifest.json").read_text())
    manifest["labels"] = {"liver": 1, "gallbladder": 2}
    (library.versions_dir / "v003" / "manifest.json").write_text(json.dumps(manifest))
    assert library.assign_ids() == {"gallbladder": 1, "pancreas": 2, "liver": 3}
    entries = {e["organ"]: e for e in library.entries()}
    assert entries["gallbladder"]["version"] == "v003" and entries["gallbladder"]["versions"] == ["v001", "v002",
                                                                                                    "v003"]
    assert entries["pancreas"]["shots"] == 2 and entries["pancreas"]["adapter_bytes"] > 0


def _independent(foundation: Predictor, versions: list[tuple[Predictor, dict[int, int]]], image_path: Path
                 ) -> np.ndarray:
    """The combination rule written out with full probability maps and SciPy's nearest-neighbour resampling."""
    volume = read_volume(image_path)
    image, net_affine = foundation.network_input(volume.array, volume.affine)
    probs = foundation.probabilities(image)[0].numpy()
    best, score = probs.argmax(0), probs.max(0)
    score[best == 0] = 0.0  # the foundation's background does not compete with a learned organ
    for predictor, values in versions:
        p = predictor.probabilities(image)[0].numpy()
        arg, top = p.argmax(0), p.max(0)
        for value, out_id in values.items():
            win = (arg == value) & (top > score)
            best[win], score[win] = out_id, top[win]
    xform = np.linalg.solve(net_affine, volume.affine)
    return ndi.affine_transform(best.astype(np.int32), xform[:3, :3], xform[:3, 3], output_shape=volume.shape,
                                order=0, mode="nearest")


def test_one_label_map_holds_the_foundations_and_every_learned_organ(tmp_path, runs, phantom_dir):
    library = make_library(tmp_path / "lib", runs, ["a", "b"])
    library.assign_ids()
    model, spec = load_model("default")
    foundation = Predictor(model, spec, device="cpu")
    combined = LibraryPredictor(foundation, library, pins={"gallbladder": "v001"})
    top = max(foundation.labels.values())
    assert combined.labels == {**foundation.labels, "gallbladder": top + 1, "pancreas": top + 2}
    assert combined.served == {"gallbladder": "v001", "pancreas": "v002"}
    image = phantom_dir / "images" / "phantom_003.nii.gz"
    volume = read_volume(image)
    with torch.no_grad():
        mask = combined.predict_array(volume.array, volume.affine)
    v1, v2 = (combined.predictor(v) for v in (library.resolve({"gallbladder": "v001"})["gallbladder"],
                                               library.resolve()["pancreas"]))
    expected = _independent(foundation, [(v1, {v1.labels["gallbladder"]: top + 1}),
                                         (v2, {v2.labels["pancreas"]: top + 2})], image)
    assert mask.shape == volume.shape and mask.dtype == np.uint8
    assert (mask == expected).mean() > 0.999
    assert set(np.unique(mask)) <= {0, *combined.labels.values()}


def test_a_foreign_foundation_is_refused_and_export_import_moves_an_organ(tmp_path, runs, phantom_dir, capsys):
    library = make_library(tmp_path / "lib", runs, ["a", "b"])
    assert main(["adapters", "export", "--library", str(library.root), "--organ", "pancreas",
                 "--out", str(tmp_path / "pancreas")]) == 0
    second = OrganLibrary(tmp_path / "second")
    shutil.copytree(runs["a"], second.versions_dir / "v001")
    assert main(["adapters", "import", "--library", str(second.root), "--from", str(tmp_path / "pancreas")]) == 0
    assert {o: [v.id for v in vs] for o, vs in second.organs().items()} == {"gallbladder": ["v001", "v002"],
                                                                            "pancreas": ["v002"]}
    same = ("adapter.safetensors", "adapter.json", "network/network.json")
    assert all((second.versions_dir / "v002" / f).read_bytes() == (runs["b"] / f).read_bytes() for f in same)
    # an adapter of another foundation network: refused, nothing written
    foreign = tmp_path / "foreign"
    shutil.copytree(tmp_path / "pancreas", foreign)
    adapter = json.loads((foreign / "adapter.json").read_text())
    adapter["base_sha256"] = "0" * 64
    (foreign / "adapter.json").write_text(json.dumps(adapter))
    capsys.readouterr()
    assert main(["adapters", "import", "--library", str(second.root), "--from", str(foreign)]) == 2
    assert "another foundation" in capsys.readouterr().err
    assert [v.id for v in second.versions()] == ["v001", "v002"]
    # the CLI serves the library: the foundation's organs and the learned ones in one mask
    out = tmp_path / "mask.nii.gz"
    assert main(["predict", "--model", f"library:{second.root}", "--image",
                 str(phantom_dir / "images" / "phantom_004.nii.gz"), "--out", str(out)]) == 0
    names = json.loads((tmp_path / "mask.json").read_text())
    assert {"gallbladder", "pancreas", "liver"} <= set(names)
    assert isinstance(load_predictor(f"library:{second.root}"), LibraryPredictor)
