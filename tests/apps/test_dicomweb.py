"""The app on a real PACS: Orthanc with its DICOMweb plugin on loopback (own config, temporary storage, stopped by
its pid), phantom CT series uploaded through Orthanc's REST API, and our server started with
``--studies http://127.0.0.1:PORT/dicom-web``, driven by monailabel's client: list, infer, save labels (stored in
Orthanc as DICOM SEG), a bad label refused before anything is stored, a SEG put in the PACS by another tool, train
on the labels that live in the PACS, infer the adapted model.

Skipped, with the reason, where Orthanc is not installed (Debian: ``apt-get install orthanc orthanc-dicomweb``;
``.ci/run`` installs them).
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
from app_support import APP_DIR, GALLBLADDER, VENV_BIN, running, server_env, truth, write_nifti
from monailabel.client import MONAILabelClient

from arena_seg.commands.serve import free_port, server_alive
from arena_seg.data.dicom_read import read_dicom_series
from arena_seg.data.dicom_seg import build_segmentation, read_segmentation
from arena_seg.data.dicom_write import write_dicom_series
from arena_seg.data.volumes import read_volume

ORTHANC = Path(shutil.which("Orthanc") or "/usr/sbin/Orthanc")
PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
N_SERIES = 4


@dataclass
class Pacs:
    url: str  # Orthanc's REST root
    series: dict[str, str]  # phantom name -> SeriesInstanceUID
    files: dict[str, list[Path]]

    def get(self, path: str):
        with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as r:
            return json.load(r)

    def seg_series(self) -> list[str]:
        found = self.get("/dicom-web/series?Modality=SEG")
        return sorted(s["0020000E"]["Value"][0] for s in found)

    def upload(self, path: Path) -> None:
        request = urllib.request.Request(f"{self.url}/instances", data=path.read_bytes(), method="POST",
                                         headers={"Content-Type": "application/dicom"})
        with urllib.request.urlopen(request, timeout=30) as r:
            assert r.status == 200


def _alive(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/system", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def pacs(tmp_path_factory, phantom_dir) -> Pacs:
    if not (ORTHANC.is_file() and PLUGIN.is_file()):
        pytest.skip(f"Orthanc or its DICOMweb plugin is not installed ({ORTHANC}, {PLUGIN}); on Debian: "
                    "apt-get install orthanc orthanc-dicomweb")
    root = tmp_path_factory.mktemp("orthanc")
    port = free_port()
    config = {"Name": "arena-seg-test", "StorageDirectory": str(root / "db"), "IndexDirectory": str(root / "db"),
              "HttpPort": port, "DicomServerEnabled": False, "RemoteAccessAllowed": False,
              "AuthenticationEnabled": False, "Plugins": [str(PLUGIN)],
              "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}
    (root / "orthanc.json").write_text(json.dumps(config))
    url = f"http://127.0.0.1:{port}"
    with running([str(ORTHANC), str(root / "orthanc.json")], root / "orthanc.log", lambda: _alive(url), 60, root):
        pacs = Pacs(url, {}, {})
        for i, image in enumerate(sorted((phantom_dir / "images").glob("*.nii.gz"))[:N_SERIES]):
            name = image.name.removesuffix(".nii.gz")
            volume = read_volume(image)
            pacs.files[name] = write_dicom_series(np.round(volume.array), volume.affine, root / "dicom" / name,
                                                  patient_id=f"P{i}", seed=i)
            for f in pacs.files[name]:
                pacs.upload(f)
            pacs.series[name] = str(read_dicom_series(pacs.files[name]).uid)
        yield pacs


@dataclass
class Server:
    url: str
    client: MONAILabelClient
    model_dir: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory, pacs, coarse_network_dir) -> Server:
    root = tmp_path_factory.mktemp("dicomweb-server")
    port = free_port()
    cmd = [str(VENV_BIN / "monailabel"), "start_server", "--app", str(APP_DIR), "--studies", f"{pacs.url}/dicom-web",
           "--host", "127.0.0.1", "--port", str(port), "--conf", "labels", "gallbladder",
           "--conf", "model_dir", str(root / "model")]
    env = {**server_env(coarse_network_dir), "MONAI_LABEL_DICOMWEB_CACHE_PATH": str(root / "cache")}
    url = f"http://127.0.0.1:{port}"
    with running(cmd, root / "server.log", lambda: server_alive(url), 240, root, env):
        yield Server(url, MONAILabelClient(url, tmpdir=str(root / "client")), root / "model")


def _truth_on_series(phantom_dir: Path, name: str, series) -> np.ndarray:
    """The phantom's truth label reoriented onto its DICOM series' voxel grid (the writer stores slices in
    radiological order, so the axes differ from the NIfTI's)."""
    from nibabel.orientations import apply_orientation, io_orientation, ornt_transform

    array, affine = truth(phantom_dir, name)
    return apply_orientation(array, ornt_transform(io_orientation(affine), io_orientation(series.affine)))


def _truth_label(phantom_dir: Path, name: str, series, tmp: Path) -> Path:
    array = _truth_on_series(phantom_dir, name, series)
    return write_nifti(np.where(array == GALLBLADDER, 2, 0), series.affine, tmp / f"{name}-label.nii.gz")


@pytest.mark.slow
def test_lists_the_pacs_series_and_infers_on_their_grid(server, pacs):
    sample = server.client.next_sample("first", {})
    assert sample["id"] in pacs.series.values()
    name = next(n for n, uid in pacs.series.items() if uid == sample["id"])
    mask_file, params = server.client.infer("foundation", sample["id"], {})
    source = read_dicom_series(pacs.files[name])
    mask = read_volume(mask_file, "label")
    assert mask.shape == source.array.shape
    np.testing.assert_allclose(mask.affine, source.affine, atol=1e-3)
    assert params["label_names"]["liver"] > 0
    # the DICOMweb proxy (OHIF's way to the PACS) stays on the event loop and answers on a DICOMweb datastore
    answer = requests.get(f"{server.url}/proxy/dicom/qido/series", timeout=60)
    assert answer.status_code == 200, answer.text[:300]
    assert {s["0020000E"]["Value"][0] for s in answer.json()} >= set(pacs.series.values())


@pytest.mark.slow
def test_labels_go_to_the_pacs_as_seg_and_training_reads_them_back(server, pacs, phantom_dir, tmp_path):
    names = sorted(pacs.series)
    before = pacs.seg_series()
    # a label off the series' grid is refused before anything reaches the PACS
    source = read_dicom_series(pacs.files[names[0]])
    array = _truth_on_series(phantom_dir, names[0], source)
    bad = write_nifti(np.where(array[:-2] == GALLBLADDER, 1, 0), source.affine, tmp_path / "bad.nii.gz")
    with pytest.raises(Exception, match="422|shape|grid"):
        server.client.save_label(pacs.series[names[0]], str(bad), tag="final",
                                 params={"label_info": [{"name": "gallbladder", "idx": 1}]})
    assert pacs.seg_series() == before

    # two labels drawn in the client (gallbladder = value 2, named in label_info), stored as DICOM SEG
    named = {"label_info": [{"name": "liver", "idx": 1}, {"name": "gallbladder", "idx": 2}]}
    for name in names[:2]:
        label = _truth_label(phantom_dir, name, read_dicom_series(pacs.files[name]), tmp_path)
        server.client.save_label(pacs.series[name], str(label), tag="final", params=named)
    segs = pacs.seg_series()
    assert len(segs) == len(before) + 2

    # the SEG in the PACS is readable by highdicom and its frames are the label, on the source slices
    from dicomweb_client import DICOMwebClient

    dw = DICOMwebClient(f"{pacs.url}/dicom-web")
    found = None
    for uid in segs:
        meta = dw.search_for_series(search_filters={"SeriesInstanceUID": uid})[0]
        instance = dw.retrieve_series(meta["0020000D"]["Value"][0], uid)[0]
        if instance.ReferencedSeriesSequence[0].SeriesInstanceUID == pacs.series[names[0]]:
            instance.save_as(str(tmp_path / "seg.dcm"))
            found = read_segmentation(tmp_path / "seg.dcm", source.headers, lambda n: 1 if n == "gallbladder" else None)
    assert found is not None
    array, kept = found
    want = _truth_on_series(phantom_dir, names[0], source)
    assert kept == {"gallbladder": 1}
    np.testing.assert_array_equal(array, (want == GALLBLADDER).astype(np.uint8))

    # a SEG another tool put in the PACS (no arena-seg request involved) labels a third series
    third = read_dicom_series(pacs.files[names[2]])
    t3 = _truth_on_series(phantom_dir, names[2], third)
    seg = build_segmentation(third.headers, (t3 == GALLBLADDER).astype(np.uint8), {"Gallbladder": 1},
                             model_name="other tool", manual=True, uid_seed="elsewhere")
    seg.save_as(str(tmp_path / "other.dcm"))
    pacs.upload(tmp_path / "other.dcm")

    # train on what the PACS holds: the three labelled series
    server.client.train_start("arena", {"max_epochs": 1, "num_samples": 1, "val_split": 0.0, "device": "cpu"})
    deadline = time.time() + 300
    while server.client.train_status().get("status") in ("SUBMITTED", "RUNNING"):
        assert time.time() < deadline, server.client.train_status()
        time.sleep(2)
    assert server.client.train_status()["status"] == "DONE", server.client.train_status()
    manifest = json.loads((server.model_dir / "arena" / "latest" / "manifest.json").read_text())
    trained = set(manifest["data_ids"]) | set(manifest["val_ids"])
    assert trained == {pacs.series[n] for n in names[:3]}

    mask_file, params = server.client.infer("arena", pacs.series[names[3]], {})
    assert read_volume(mask_file, "label").shape == read_dicom_series(pacs.files[names[3]]).array.shape
    assert params["label_names"]["gallbladder"] == max(v for k, v in params["label_names"].items()
                                                       if k != "gallbladder") + 1
    assert set(params["versions"]) == {"gallbladder"}
