"""Write a label mask as a DICOM Segmentation (highdicom) that references the CT slices it was made from.

Each organ becomes one segment named with its organ and coded in SNOMED CT where we know the code (category
"Anatomical Structure", type the organ, laterality as a type modifier); organs without a code get a local code
(coding scheme ``99ARENASEG``). The algorithm is identified as arena-seg's model (family: Artificial Intelligence).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["ORGAN_CODES", "build_segmentation", "organ_codes", "read_segmentation", "write_segmentation"]

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


def build_segmentation(headers: list, mask: np.ndarray, labels: dict[str, int], *, model_name: str,
                       model_version: str = "", series_number: int = 901, uid_seed: str = "", manual: bool = False):
    """A binary ``hd.seg.Segmentation`` of ``mask`` ((X, Y, Z) = (column, row, slice), slices in the order of
    ``headers``) with one segment per organ of ``labels`` ({organ: mask value}), in that value order.
    ``manual``: a clinician's label (segments typed MANUAL, no algorithm), else ``model_name``'s result.

    UIDs derive from ``uid_seed``, the source series and the mask: the same result always gets the same UIDs.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    from arena_seg import __version__

    if mask.shape != (int(headers[0].Columns), int(headers[0].Rows), len(headers)):
        raise ValueError(f"mask shape {mask.shape} does not fit {len(headers)} slices of "
                         f"{headers[0].Rows}x{headers[0].Columns}")
    organs = sorted(labels, key=labels.get)
    lut = np.zeros(max(256, int(mask.max()) + 1), dtype=np.uint8)
    for number, organ in enumerate(organs, start=1):
        lut[labels[organ]] = number
    frames = np.ascontiguousarray(lut[mask].transpose(2, 1, 0))  # (slices, rows, columns) of segment numbers
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
            source_images=headers, pixel_array=frames, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
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


def write_segmentation(path: str | Path, headers: list, mask: np.ndarray, labels: dict[str, int],
                       **kwargs) -> Path:
    """Build (:func:`build_segmentation`) and save the SEG atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    seg = build_segmentation(headers, mask, labels, **kwargs)
    tmp = path.with_name(f".partial.{path.name}")
    try:
        seg.save_as(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_segmentation(path: str | Path, headers: list, value_of: Callable[[str], int | None]
                      ) -> tuple[np.ndarray, dict[str, int]]:
    """A DICOM SEG (any writer's: ours, Slicer's dcmqi, OHIF's) as a label map on its source series' grid.

    ``headers``: the source series' datasets in slice order; ``value_of(segment label)``: the value a segment gets
    in the map, None to leave it out. Returns ((X, Y, Z) uint8 map, {segment label: value} of the segments kept);
    on overlap the later segment wins. Raises ValueError when the SEG does not reference ``headers``' instances.
    """
    import highdicom as hd

    seg = hd.seg.segread(str(path))
    kept = {}
    for desc in seg.SegmentSequence:
        value = value_of(str(desc.SegmentLabel))
        if value is not None:
            kept[int(desc.SegmentNumber)] = (str(desc.SegmentLabel), int(value))
    out = np.zeros((int(headers[0].Columns), int(headers[0].Rows), len(headers)), dtype=np.uint8)
    if not kept:
        return out, {}
    sops = [str(h.SOPInstanceUID) for h in headers]
    try:
        frames = seg.get_pixels_by_source_instance(sops, segment_numbers=sorted(kept), combine_segments=False,
                                                   assert_missing_frames_are_empty=True)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise ValueError(f"{Path(path).name}: does not fit series {headers[0].SeriesInstanceUID} ({exc})") from None
    for k, number in enumerate(sorted(kept)):
        out[frames[..., k].transpose(2, 1, 0) > 0] = kept[number][1]
    return out, {name: value for name, value in kept.values()}
