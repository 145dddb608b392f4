"""The DICOMweb datastore on a PACS series whose instances have no UIDs in their headers (and a scout among them):
read with arena-seg's reader on its true grid, and a final label kept (in the cache, with a warning) when no SEG
can reference the series, as the batch runner does. The PACS is a small stand-in for dicomweb-client's methods."""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))  # the export writers of tests/data
from app_support import APP_DIR  # noqa: E402  (puts the app's `lib` on sys.path)
from dicom_cases import add_scout, anonymised, dcm2niix_style  # noqa: E402

from arena_seg.data.dicom_write import write_dicom_series  # noqa: E402
from arena_seg.data.phantoms import make_phantom  # noqa: E402

UID = "1.2.826.0.1.3680043.8.498.13"  # what the PACS lists the series under


class StandIn:
    """The dicomweb-client calls the datastore makes, over a folder of files."""

    base_url = "http://pacs.invalid/dicom-web"

    def __init__(self, files: list[Path]) -> None:
        self.files, self.stored = files, []

    def search_for_series(self, search_filters=None):
        if (search_filters or {}).get("Modality") == "SEG":
            return []
        return [{"0020000E": {"vr": "UI", "Value": [UID]}, "0020000D": {"vr": "UI", "Value": ["1.2.3"]},
                 "00080060": {"vr": "CS", "Value": ["CT"]}}]

    def retrieve_series(self, study, series):
        assert series == UID
        return [pydicom.dcmread(f) for f in self.files]

    def store_instances(self, datasets):
        self.stored += datasets


@pytest.fixture()
def store(tmp_path):
    from lib.dicomweb import ArenaDicomWebDatastore

    ph = make_phantom(2, spacing=(10.0, 9.0, 14.0))
    plain = write_dicom_series(ph.image, ph.affine, tmp_path / "plain", patient_id="W2", seed=2)
    files = anonymised(plain, tmp_path / "pacs")  # empty UIDs, JPEG 2000
    files.append(add_scout(files, tmp_path / "pacs" / "scout"))
    pacs = StandIn(files)
    from lib.organs import OrganRegistry

    registry = OrganRegistry(tmp_path / "arena", ("gallbladder",))
    return ArenaDicomWebDatastore(pacs, registry, {"Modality": "CT"}, str(tmp_path / "cache")), pacs


def test_series_without_uids_and_a_label_without_seg(store, tmp_path):
    ds, pacs = store
    assert APP_DIR.is_dir() and ds.list_images() == [UID]
    image = nib.load(ds.get_image_uri(UID))
    shape, affine = dcm2niix_style(pacs.files[:-1])  # the scout is left out
    assert image.shape == shape and np.allclose(image.affine, affine, atol=1e-4)
    label = np.zeros(image.shape, np.uint8)
    label[10:20, 10:20, 5:9] = 1
    nib.save(nib.Nifti1Image(label, image.affine), tmp_path / "label.nii.gz")
    assert ds.save_label(UID, str(tmp_path / "label.nii.gz"), "final", {}) == UID
    assert pacs.stored == []  # a SEG could not name its source instances: nothing sent to the PACS
    info = ds.get_label_info(UID, "final")
    assert info["arena_warning"].startswith("DICOM SEG left out: the source images have no usable StudyInstanceUID")
    assert ds.get_labeled_images() == [UID]  # and the next sync with the PACS does not drop it
    stored = nib.load(ds.get_label_uri(UID, "final"))
    np.testing.assert_array_equal(np.asarray(stored.dataobj), label)


def test_batch_item_of_an_image_folder_with_a_scout_series(tmp_path):
    from lib.batch import _series_item

    ph = make_phantom(2, spacing=(10.0, 9.0, 14.0))
    files = write_dicom_series(ph.image, ph.affine, tmp_path / "study", patient_id="W2", seed=2)
    add_scout(files, tmp_path / "study" / "topogram.dcm", same_series=False)
    item = _series_item("study", str(tmp_path / "study"))
    assert item.kind == "dicom" and len(item.files) == len(files) and not item.skip and not item.error
    assert item.notes == ["series left out of the image folder: study: localizer (scout) images only, not a volume"]
