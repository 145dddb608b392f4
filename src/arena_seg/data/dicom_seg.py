"""Write a label mask as a DICOM Segmentation (highdicom) that references the CT slices it was made from.

Each organ becomes one segment named with its organ and coded in SNOMED CT where we know the code (category
"Anatomical Structure", type the organ, laterality as a type modifier); organs without a code get a local code
(coding scheme ``99ARENASEG``). The algorithm is identified as arena-seg's model (family: Artificial Intelligence).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from arena_seg.files import atomic_write

__all__ = ["ORGAN_CODES", "build_segmentation", "organ_codes", "read_segmentation", "seg_left_out_reason",
           "write_segmentation"]

_SCT_ANATOMICAL_STRUCTURE = ("123037004", "Anatomical Structure")
_LATERALITY = {"left": ("7771000", "Left"), "right": ("24028007", "Right")}
LOCAL_SCHEME = "99ARENASEG"

#: organ name (TotalSegmentator spelling) -> (SNOMED CT code, meaning, laterality or None)
ORGAN_CODES: dict[str, tuple[str, str, str | None]] = {
    "liver": ("10200004", "Liver", None),
    "spleen": ("78961009", "Spleen", None),
    "kidney_right": ("64033007", "Kidney", "right"),
    "kidney_left": ("64033007", "Kidney", "left"),
    "aorta": ("15825003", "Aorta", None),
    "stomach": ("69695003", "Stomach", None),
    "pancreas": ("15776009", "Pancreas", None),
    "gallbladder": ("28231008", "Gallbladder", None),
    "inferior_vena_cava": ("64131007", "Inferior vena cava", None),
    "urinary_bladder": ("89837001", "Urinary bladder", None),
    "esophagus": ("32849002", "Esophagus", None),
    "duodenum": ("38848004", "Duodenum", None),
    "colon": ("71854001", "Colon", None),
    "small_bowel": ("30315005", "Small intestine", None),
    "trachea": ("44567001", "Trachea", None),
    "brain": ("12738006", "Brain", None),
    "heart": ("80891009", "Heart", None),
    "sacrum": ("54735007", "Sacrum", None),
    "adrenal_gland_right": ("23451007", "Adrenal gland", "right"),
    "adrenal_gland_left": ("23451007", "Adrenal gland", "left"),
    "portal_vein_and_splenic_vein": ("110765007", "Portal vein and splenic vein", None),
    "pulmonary_artery": ("81040000", "Pulmonary artery", None),
    "lung_right": ("3341006", "Right lung", None),
    "lung_left": ("44029006", "Left lung", None),
    "prostate": ("41216001", "Prostate", None),
    "femur_right": ("71341001", "Femur", "right"),
    "femur_left": ("71341001", "Femur", "left"),
}


def organ_codes(name: str):
    """(category, type, laterality modifier or None) as highdicom CodedConcepts for an organ name."""
    from highdicom.sr import CodedConcept

    category = CodedConcept(_SCT_ANATOMICAL_STRUCTURE[0], "SCT", _SCT_ANATOMICAL_STRUCTURE[1])
    if name in ORGAN_CODES:
        code, meaning, side = ORGAN_CODES[name]
        modifier = CodedConcept(_LATERALITY[side][0], "SCT", _LATERALITY[side][1]) if side else None
        return category, CodedConcept(code, "SCT", meaning), modifier
    return category, CodedConcept(name[:64], LOCAL_SCHEME, name.replace("_", " ")), None


# type 2 attributes highdicom copies from the source (they may be empty, not absent)
_TYPE2 = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID", "StudyDate",
          "StudyTime", "ReferringPhysicianName")


def _parts(source) -> tuple[list, list, list[int | None] | None]:
    """(per-slice headers, source data sets, frame number of each slice or None) of a DicomSeries or header list."""
    if isinstance(source, list | tuple):
        return list(source), list(source), None
    frames = source.frames
    return list(source.headers), list(source.headers if frames is None else source.sources), frames


def seg_left_out_reason(source) -> str | None:
    """Why a SEG cannot reference ``source`` (a :class:`~arena_seg.data.dicom_read.DicomSeries` or its per-slice
    headers), or None when it can: a SEG names its source instances by UID, so they need usable ones."""
    from arena_seg.data.dicom_group import valid_uid

    headers, sources, frames = _parts(source)
    missing = [k for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
               if not all(valid_uid(ds.get(k)) for ds in sources)]
    if missing:
        return f"the source images have no usable {', '.join(missing)} to reference"
    if not all(valid_uid(ds.get("FrameOfReferenceUID")) for ds in sources):
        return "the source images have no FrameOfReferenceUID"
    if frames is None and len({str(ds.SOPInstanceUID) for ds in sources}) < len(sources):
        return "several source images share one SOPInstanceUID"
    if frames is not None and (len(sources) != 1 or any(f is None for f in frames)):
        return f"the slices come from {len(sources)} images, not from one multi-frame image"
    return None


def _referencable(ds, thickness: float):
    """A shallow copy of a source data set with what highdicom reads filled in where the source leaves it out."""
    from pydicom.dataset import Dataset

    copy = Dataset()
    copy.update(ds)
    if hasattr(ds, "file_meta"):
        copy.file_meta = ds.file_meta
    for keyword in _TYPE2:
        if keyword not in copy:
            setattr(copy, keyword, "")
    if "PerFrameFunctionalGroupsSequence" not in copy and not copy.get("SliceThickness"):
        copy.SliceThickness = f"{thickness:.6g}"  # type 2 in CT; the SEG's pixel measures need a value
    return copy


def _multiframe_source(ds, first_frame, thickness: float):
    """The multi-frame source with orientation and pixel measures in its shared functional groups (where highdicom
    reads them); per-frame values were checked to be one and the same by the series reader."""
    import highdicom as hd
    from pydicom.dataset import Dataset

    copy = _referencable(ds, thickness)
    shared = Dataset()
    if copy.get("SharedFunctionalGroupsSequence"):
        shared.update(copy.SharedFunctionalGroupsSequence[0])
    if "PlaneOrientationSequence" not in shared:
        shared.PlaneOrientationSequence = hd.PlaneOrientationSequence("PATIENT", first_frame.ImageOrientationPatient)
    if "PixelMeasuresSequence" not in shared:
        shared.PixelMeasuresSequence = hd.PixelMeasuresSequence(
            first_frame.PixelSpacing, float(first_frame.get("SliceThickness") or thickness))
    copy.SharedFunctionalGroupsSequence = [shared]
    return copy


def build_segmentation(source, mask: np.ndarray, labels: dict[str, int], *, model_name: str,
                       model_version: str = "", series_number: int = 901, uid_seed: str = "", manual: bool = False):
    """A binary ``hd.seg.Segmentation`` of ``mask`` ((X, Y, Z) = (column, row, slice), slices in the order of
    ``source``: a :class:`~arena_seg.data.dicom_read.DicomSeries` or its per-slice headers) with one segment per
    organ of ``labels`` ({organ: mask value}), in that value order. ``manual``: a clinician's label (segments typed
    MANUAL, no algorithm), else ``model_name``'s result. A multi-frame source is referenced frame by frame.

    UIDs derive from ``uid_seed``, the source series and the mask: the same result always gets the same UIDs.
    Raises ValueError when the source cannot be referenced (:func:`seg_left_out_reason`) or the mask does not fit.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    from arena_seg import __version__

    headers, sources, source_frames = _parts(source)
    if mask.shape != (int(headers[0].Columns), int(headers[0].Rows), len(headers)):
        raise ValueError(f"mask shape {mask.shape} does not fit {len(headers)} slices of "
                         f"{headers[0].Rows}x{headers[0].Columns}")
    why = seg_left_out_reason(source)
    if why:
        raise ValueError(f"no DICOM SEG: {why}")
    organs = sorted(labels, key=labels.get)
    lut = np.zeros(max(256, int(mask.max()) + 1), dtype=np.uint8)
    for number, organ in enumerate(organs, start=1):
        lut[labels[organ]] = number
    frames = np.ascontiguousarray(lut[mask].transpose(2, 1, 0))  # (slices, rows, columns) of segment numbers
    thickness = _slice_spacing(headers)
    if source_frames is None:
        images = [_referencable(ds, thickness) for ds in sources]
    else:  # one SEG frame per source frame, in the source's frame order; frames left out of the volume stay empty
        images = [_multiframe_source(sources[0], headers[0], thickness)]
        stack = np.zeros((int(sources[0].NumberOfFrames),) + frames.shape[1:], dtype=frames.dtype)
        stack[np.asarray(source_frames) - 1] = frames
        frames = stack
    algorithm = hd.AlgorithmIdentificationSequence(name=f"arena-seg {model_name}"[:64],
                                                   family=codes.cid7162.ArtificialIntelligence,
                                                   version=(model_version or __version__)[:64])
    # same series, model and mask: same UIDs (reruns are idempotent); any other mask gets new ones
    source_uid = f"{headers[0].SeriesInstanceUID}/{hashlib.sha1(frames.tobytes()).hexdigest()}"
    descriptions = []
    for number, organ in enumerate(organs, start=1):
        category, kind, modifier = organ_codes(organ)
        desc = hd.seg.SegmentDescription(
            segment_number=number, segment_label=organ[:64], segmented_property_category=category,
            segmented_property_type=kind,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL if manual else
            hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=None if manual else algorithm, tracking_id=organ[:64],
            tracking_uid=generate_uid(entropy_srcs=["track", uid_seed, source_uid, organ]),
        )
        if modifier is not None:
            desc.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [modifier]
        descriptions.append(desc)
    with warnings.catch_warnings():  # warnings about the source's own values (one-part names, long strings)
        warnings.simplefilter("ignore", UserWarning)
        return hd.seg.Segmentation(
            source_images=images, pixel_array=frames, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=generate_uid(entropy_srcs=["seg-series", uid_seed, source_uid]),
            series_number=series_number,
            sop_instance_uid=generate_uid(entropy_srcs=["seg-sop", uid_seed, source_uid]),
            instance_number=1, manufacturer="arena-seg", manufacturer_model_name=model_name[:64],
            software_versions=__version__, device_serial_number="0",
            series_description=f"arena-seg {'label' if manual else model_name}"[:64], content_label="ARENASEG",
            content_description=(f"organs drawn by a user ({model_name})" if manual else
                                 f"organs segmented by arena-seg ({model_name})")[:64],
        )


def _slice_spacing(headers: list) -> float:
    """Distance between the first two slices (1 mm for a single slice): a SliceThickness for sources without one."""
    if len(headers) < 2:
        return 1.0
    a, b = (np.asarray([float(v) for v in h.ImagePositionPatient]) for h in headers[:2])
    return float(np.linalg.norm(b - a)) or 1.0


def write_segmentation(path: str | Path, source, mask: np.ndarray, labels: dict[str, int], **kwargs) -> Path:
    """Build (:func:`build_segmentation`) and save the SEG atomically (:func:`arena_seg.files.atomic_write`)."""
    seg = build_segmentation(source, mask, labels, **kwargs)
    return atomic_write(path, lambda tmp: seg.save_as(str(tmp)))


def read_segmentation(path: str | Path, source, value_of: Callable[[str], int | None]
                      ) -> tuple[np.ndarray, dict[str, int]]:
    """A DICOM SEG (any writer's: ours, Slicer's dcmqi, OHIF's) as a label map on its source series' grid.

    ``source``: the source :class:`~arena_seg.data.dicom_read.DicomSeries` (multi-frame ones too), or its datasets
    in slice order; ``value_of(segment label)``: the value a segment gets in the map, None to leave it out. Returns
    ((X, Y, Z) uint8 map, {segment label: value} of the segments kept); on overlap the later segment wins. Raises
    ValueError when the SEG does not reference the source's instances.
    """
    import highdicom as hd

    headers, sources, source_frames = _parts(source)
    seg = hd.seg.segread(str(path))
    kept = {}
    for desc in seg.SegmentSequence:
        value = value_of(str(desc.SegmentLabel))
        if value is not None:
            kept[int(desc.SegmentNumber)] = (str(desc.SegmentLabel), int(value))
    out = np.zeros((int(headers[0].Columns), int(headers[0].Rows), len(headers)), dtype=np.uint8)
    if not kept:
        return out, {}
    try:
        if source_frames is None:
            frames = seg.get_pixels_by_source_instance([str(h.SOPInstanceUID) for h in headers],
                                                       segment_numbers=sorted(kept), combine_segments=False,
                                                       assert_missing_frames_are_empty=True)
        else:
            frames = seg.get_pixels_by_source_frame(str(sources[0].SOPInstanceUID), source_frames,
                                                    segment_numbers=sorted(kept), combine_segments=False,
                                                    assert_missing_frames_are_empty=True)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise ValueError(f"{Path(path).name}: does not fit series {headers[0].SeriesInstanceUID} ({exc})") from None
    for k, number in enumerate(sorted(kept)):
        out[frames[..., k].transpose(2, 1, 0) > 0] = kept[number][1]
    return out, {name: value for name, value in kept.values()}
