"""The error a series that cannot be segmented raises (its message is the reason given in the report)."""

__all__ = ["SeriesError"]


class SeriesError(Exception):
    """A series that cannot be segmented as it is; the message is the reason given in the report."""
