"""The exception tree of spindex.

    SpindexError
    ├── ConfigError                 a setting is missing or invalid; nothing ran
    ├── SystemicError               the run cannot go on: stop, commit nothing unfinished
    │   ├── AuthError               credentials refused, or a permission not granted
    │   ├── SourceUnavailable       Graph unreachable or failing after retries
    │   ├── IndexUnavailable        the index unreachable or refusing writes
    │   ├── MassDeleteRefused       a run would delete more than the allowed share
    │   └── RunStopped              asked to stop (SIGTERM) after a committed batch
    ├── ResyncRequired              the service no longer accepts a library's delta link
    └── ItemError                   one item fails; it is recorded and the run goes on
        ├── BadInput                the file itself cannot be indexed
        │   ├── UnsupportedFormat
        │   ├── CorruptFile
        │   ├── EncryptedFile
        │   ├── EmptyFile
        │   └── TooLarge
        ├── PermissionsUnreadable   fail closed: the item is not searchable
        └── ItemUnavailable         the item vanished or could not be fetched

Every `ItemError` has a short machine-readable `reason` that the run report records.
Messages never contain secrets: they are built from ids, names and status codes only.
"""

from __future__ import annotations


class SpindexError(Exception):
    """Base of every error spindex raises on purpose."""


class ConfigError(SpindexError):
    """A setting is missing or invalid."""


class SystemicError(SpindexError):
    """A failure that stops the run: the run commits nothing it has not finished."""


class AuthError(SystemicError):
    """Credentials were refused, or the app lacks a permission."""


class SourceUnavailable(SystemicError):
    """Microsoft Graph (or the sandbox) could not be reached or kept failing."""


class IndexUnavailable(SystemicError):
    """The search index could not be reached or refused writes."""


class MassDeleteRefused(SystemicError):
    """A run would delete more of a library than the configured share allows."""


class RunStopped(SystemicError):
    """The run was asked to stop; it did so right after committing a batch."""


class ResyncRequired(SpindexError):
    """The stored delta link is no longer valid: the library needs a full enumeration."""


class ItemError(SpindexError):
    """One item could not be processed; `reason` is a stable code for the run report."""

    reason = "item_error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class BadInput(ItemError):
    """The content itself cannot be indexed."""

    reason = "bad_input"


class UnsupportedFormat(BadInput):
    """No extractor handles this file type."""

    reason = "unsupported_format"


class CorruptFile(BadInput):
    """The file is damaged or not what its name says."""

    reason = "corrupt"


class EncryptedFile(BadInput):
    """The file is password-protected or encrypted."""

    reason = "encrypted"


class EmptyFile(BadInput):
    """The file has no bytes, or no text could be found in it."""

    reason = "empty"


class TooLarge(BadInput):
    """The file is over the configured size limit; it was not downloaded."""

    reason = "too_large"


class PermissionsUnreadable(ItemError):
    """The item's permissions could not be read: it is kept out of the index."""

    reason = "permissions_unreadable"


class ItemUnavailable(ItemError):
    """The item vanished between listing and fetching, or its download failed."""

    reason = "unavailable"
