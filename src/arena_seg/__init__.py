"""arena-seg: few-shot CT organ segmentation with ARENA adapters."""

__version__ = "0.1.0"
