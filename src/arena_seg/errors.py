"""Errors that the command line and the server turn into one clear line (exit code 2 / HTTP 4xx)."""

from __future__ import annotations


class InputError(ValueError):
    """The user's data or options are wrong; the message says what and how to fix it."""
