"""Multi-frame images (Enhanced CT, Legacy Converted Enhanced CT): one header per frame, from the functional groups.

Each frame's geometry lies in the per-frame functional groups or, when it is the same for all frames, in the
shared ones (PS3.3 C.7.6.16): PlanePositionSequence, PlaneOrientationSequence, PixelMeasuresSequence,
PixelValueTransformationSequence (rescale), FrameContentSequence (acquisition, stack, temporal index) and
CTImageFrameTypeSequence (frame type). A frame header is a plain data set holding those values under the
keywords a single-frame CT image uses, so that the series checks treat frames and slices alike.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from arena_seg.data.dicom_errors import SeriesError

__all__ = ["frame_headers", "is_multiframe"]

# top-level elements a frame header does not inherit (pixels, and the groups it is built from)
_NOT_INHERITED = {"PixelData", "FloatPixelData", "DoubleFloatPixelData", "PerFrameFunctionalGroupsSequence",
                  "SharedFunctionalGroupsSequence", "NumberOfFrames"}


def is_multiframe(ds) -> bool:
    """More than one frame, or an enhanced image's functional groups (a one-frame enhanced image is read alike)."""
    return int(ds.get("NumberOfFrames", 1) or 1) > 1 or "PerFrameFunctionalGroupsSequence" in ds


def frame_headers(ds, name: str) -> list[Dataset]:
    """One header per frame (frame k at index k - 1) with the frame's position, orientation, spacing and rescale.

    Raises :class:`~arena_seg.data.dicom_errors.SeriesError` when the frames' positions cannot be known.
    """
    n = int(ds.get("NumberOfFrames", 1) or 1)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if not per_frame:
        raise SeriesError(f"{name}: a multi-frame image without per-frame functional groups (its {n} frames have "
                          f"no positions)")
    if len(per_frame) != n:
        raise SeriesError(f"{name}: {len(per_frame)} per-frame functional groups for {n} frames")
    shared = (ds.get("SharedFunctionalGroupsSequence") or [Dataset()])[0]
    base = Dataset()
    for element in ds:
        if element.keyword not in _NOT_INHERITED:
            base.add(element)

    def group(item: Dataset, keyword: str) -> Dataset | None:
        seq = item.get(keyword) or shared.get(keyword)
        return seq[0] if seq else None

    headers = []
    for k, item in enumerate(per_frame, start=1):
        h = Dataset()
        h.update(base)
        position, orientation = group(item, "PlanePositionSequence"), group(item, "PlaneOrientationSequence")
        measures = group(item, "PixelMeasuresSequence")
        if position is None or "ImagePositionPatient" not in position:
            raise SeriesError(f"{name}: frame {k} has no ImagePositionPatient (PlanePositionSequence)")
        h.ImagePositionPatient = position.ImagePositionPatient
        if orientation is not None and "ImageOrientationPatient" in orientation:
            h.ImageOrientationPatient = orientation.ImageOrientationPatient
        if measures is not None:
            for keyword in ("PixelSpacing", "SliceThickness", "SpacingBetweenSlices"):
                if keyword in measures:
                    setattr(h, keyword, measures[keyword].value)
        rescale = group(item, "PixelValueTransformationSequence")
        if rescale is not None:
            for keyword in ("RescaleSlope", "RescaleIntercept"):
                if keyword in rescale:
                    setattr(h, keyword, rescale[keyword].value)
        content = group(item, "FrameContentSequence")
        if content is not None:
            if "FrameAcquisitionNumber" in content:
                h.AcquisitionNumber = content.FrameAcquisitionNumber
            for keyword in ("StackID", "InStackPositionNumber", "TemporalPositionIndex"):
                if keyword in content:
                    setattr(h, keyword, content[keyword].value)
        frame_type = group(item, "CTImageFrameTypeSequence")
        if frame_type is not None and "FrameType" in frame_type:
            h.ImageType = frame_type.FrameType
        headers.append(h)
    return headers
