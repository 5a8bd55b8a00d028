"""One exception family for everything a caller can get wrong or a setup can lack.

Each error carries a stable machine-readable ``code``, the HTTP status it maps to, and a
message that is safe to show to the person who sent the request (no paths from the server,
no stack traces). The HTTP layer and the CLI map these in one place each.
"""

from __future__ import annotations


def size_text(nbytes: int) -> str:
    """A byte count for people: ``27.1 MB``, ``640 KB``, ``900 bytes``. MB and KB are 2**20
    and 2**10 bytes, the units the limits' defaults are set in (20 MB is 20,971,520 bytes)."""
    for unit, scale in (("MB", 1 << 20), ("KB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{nbytes:,} bytes"


class AlphacutError(Exception):
    """Base class: an error whose message is meant for the user."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInputError(AlphacutError):
    """The request itself is malformed (a bad option value, a wrong argument type)."""

    status = 400
    code = "invalid_input"


class UnsupportedImageError(AlphacutError):
    """The bytes are not an image in a format alphacut accepts."""

    status = 415
    code = "unsupported_image"


class CorruptImageError(AlphacutError):
    """The bytes claim a supported format but cannot be decoded (truncated, damaged)."""

    status = 422
    code = "corrupt_image"


class ImageTooLargeError(AlphacutError):
    """The input exceeds a configured limit on bytes or pixels."""

    status = 413
    code = "image_too_large"

    @classmethod
    def over_bytes(
        cls, size: int | None, limit: int, what: str = "photo", note: str = ""
    ) -> ImageTooLargeError:
        """``photo too large: 27.1 MB, the limit is 20 MB``; ``size`` None where only "more
        than the limit" is known (a body cut off while it streamed in); ``note``: what the
        size is, where it is not the photo's own (``" (36.1 MB as base64)"``)."""
        limit_text = size_text(limit)
        if size is None:
            return cls(f"{what} too large: more than {limit_text}, the limit is {limit_text}")
        size_said = size_text(size)
        if size_said == limit_text:  # 20,971,521 bytes is "20 MB" too: say the bytes
            size_said, limit_text = f"{size:,} bytes", f"{limit:,} bytes ({limit_text})"
        return cls(f"{what} too large: {size_said}{note}, the limit is {limit_text}")


class FormatLimitError(AlphacutError):
    """The result is larger than its output format can hold (WebP: 16383 px a side, JPEG:
    65500). 422, as imgproxy answers a result it cannot save: the request is well formed and
    within the limits (not 400 or 413), it cannot be carried out as asked."""

    status = 422
    code = "format_limit_exceeded"


class NoSubjectError(AlphacutError):
    """The photo was read and the model ran, but it holds no subject to cut out (a plain
    wall, an empty scene): refused, never answered with an empty cut-out as a success. 422,
    as for any well-formed image that cannot be carried out; the remove.bg dialect answers
    400 ``unknown_foreground``, as remove.bg does."""

    status = 422
    code = "unknown_foreground"


class ModelNotInstalledError(AlphacutError):
    """The model's weights are not in the model directory (or fail verification)."""

    status = 503
    code = "model_not_installed"


class ModelUnavailableError(AlphacutError):
    """A request named a catalogue model this server has not installed (the client can
    choose another; the server's own models missing is :class:`ModelNotInstalledError`)."""

    status = 400
    code = "model_unavailable"


class ModelInstallError(AlphacutError):
    """Fetching or verifying model weights failed."""

    status = 500
    code = "model_install_failed"


class NotFoundError(AlphacutError):
    """The resource does not exist, or belongs to another API key (indistinguishable)."""

    status = 404
    code = "not_found"


class QuotaExceededError(AlphacutError):
    """Storing this would take the key past its storage quota. 403, as Google Drive's
    ``storageQuotaExceeded`` and Azure's quota errors: the caller is known but may not store
    more until it deletes; nothing about the request itself is too large (413) and waiting
    does not help (429)."""

    status = 403
    code = "quota_exceeded"


class InsufficientStorageError(AlphacutError):
    """The server's disk (or database) is full, or under its free-space threshold: writes are
    refused with 507 (RFC 4918) while reads and deletes go on working."""

    status = 507
    code = "insufficient_storage"


class UnauthorizedError(AlphacutError):
    """The API key is missing, unknown or revoked."""

    status = 401
    code = "unauthorized"


class MissingApiKeyError(UnauthorizedError):
    """No API key was sent at all: the message says how to send one (each API its header),
    where a wrong key only hears that it was refused."""

    code = "missing_api_key"


class RetryLaterError(AlphacutError):
    """A refusal the client should retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimitedError(RetryLaterError):
    status = 429
    code = "rate_limited"


class ServiceBusyError(RetryLaterError):
    """The bounded work queue is full: rather refuse now than hold unbounded memory."""

    status = 503
    code = "server_busy"


class BackendUnavailableError(RetryLaterError):
    """The database or the blob store did not answer within its time limit (stopped,
    overloaded, unreachable): 503 + ``Retry-After``, as for any capacity the server lacks
    for now, never a hang and never a 500."""

    status = 503
    code = "backend_unavailable"


class NotImplementedFeatureError(AlphacutError):
    status = 501
    code = "not_implemented"


class ProcessingTimeoutError(AlphacutError):
    """The work took longer than the per-request time limit."""

    status = 504
    code = "timeout"
