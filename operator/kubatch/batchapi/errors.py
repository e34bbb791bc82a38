"""AWS Batch protocol errors and small JSON helpers.

Pure. botocore reads an error's code from the ``x-amzn-ErrorType`` header (falling back to
the body's ``__type``) and its message from ``message``. ``ClientException`` (400) is the
client's mistake and is never retried; ``ServerException`` (500) is ours and is retried by
every AWS SDK. Authentication failures are 403 with AWS's own codes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

CLIENT: Final = "ClientException"
SERVER: Final = "ServerException"
UNRECOGNIZED_CLIENT: Final = "UnrecognizedClientException"
INVALID_SIGNATURE: Final = "InvalidSignatureException"
INCOMPLETE_SIGNATURE: Final = "IncompleteSignatureException"
MISSING_TOKEN: Final = "MissingAuthenticationTokenException"


class BatchApiError(Exception):
    """An error answered to the client: HTTP status, AWS error code and message."""

    status: int = 400
    code: str = CLIENT

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def body(self) -> dict[str, str]:
        """Pure: the JSON body of the error response."""
        return {"__type": self.code, "message": self.message}


class ClientError(BatchApiError):
    """400 ``ClientException``: the request is wrong; the message says how."""


class ServerError(BatchApiError):
    """500 ``ServerException``: kubatch or Kubernetes failed; the SDKs retry it."""

    status = 500
    code = SERVER


class AuthError(BatchApiError):
    """403 by default: unknown key, bad signature, expired request."""

    status = 403


def not_supported(what: str, hint: str = "") -> ClientError:
    """Pure: the ClientException for something kubatch's API does not offer."""
    text = f"{what} is not supported by kubatch's AWS Batch API"
    return ClientError(text + (f": {hint}" if hint else ""))


def epoch_ms(value: datetime | float | None) -> int | None:
    """Pure: a datetime or epoch seconds as epoch milliseconds (AWS timestamps)."""
    if value is None:
        return None
    seconds = value.timestamp() if isinstance(value, datetime) else float(value)
    if seconds <= 0:
        return None
    return round(seconds * 1000)


def prune(value: Any) -> Any:
    """Pure: drop ``None`` members of dicts, recursively (AWS omits absent fields)."""
    if isinstance(value, dict):
        return {k: prune(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [prune(v) for v in value]
    return value
