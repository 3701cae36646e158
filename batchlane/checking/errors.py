"""The checker's exceptions (re-exported by ``batchlane.checks``)."""

from __future__ import annotations


class CheckError(Exception):
    """A file that cannot be checked at all (missing, empty, corrupt); names the file and the reason."""


class ReferenceUnavailable(Exception):
    """Raised by a reference resolver when the referenced product is not certified."""
