"""Keeping secrets out of error messages and logs.

ECS echoes the server-side string-to-sign in ``SignatureDoesNotMatch`` messages, and with STS that
string holds the ``SecurityToken``.  The SDK logs server errors (and, at debug level, the request's query
parameters) through the ``aliyunsdkcore`` loggers.  Everything the product turns into a message or a log
line passes through :func:`scrub`; :func:`install_sdk_log_filter` does the same for the SDK's own logs.
"""

from __future__ import annotations

import logging
import re

# Parameter names whose values are secret in a signed RPC query, raw or percent-encoded once or twice
# (the string-to-sign encodes the canonical query a second time).
_SECRET_PARAMS = ("SecurityToken", "Signature", "AccessKeySecret")
_NAMES = "|".join(_SECRET_PARAMS)
_PARAM_RE = re.compile(r"(?P<name>" + _NAMES + r")(?P<eq>=|%3D|%253D)(?P<value>[^&\s'\",}]+)")
# The same parameters in a printed dict, as the SDK's debug log shows the request's parameters.
_DICT_RE = re.compile(r"(?P<name>" + _NAMES + r")(?P<eq>['\"]?\s*:\s*['\"]?)(?P<value>[^'\",}\s]+)")
# Key ids are not secret, but are shown masked everywhere for consistency with the client's repr.
_KEY_ID_RE = re.compile(
    r"(?P<name>AccessKeyId)(?P<eq>=|%3D|%253D|['\"]?\s*:\s*['\"]?)(?P<value>[A-Za-z0-9.]+)"
)
# Everything after this marker is the canonical request, which contains the token and key id.
_STRING_TO_SIGN_RE = re.compile(r"(string to sign is:)\s*\S+", re.IGNORECASE)
REDACTED = "<redacted>"


def scrub(text: str, *secrets: str | None) -> str:
    """Return ``text`` with signed-request material and the given secret values removed."""
    text = _STRING_TO_SIGN_RE.sub(r"\1 " + REDACTED, text)
    for pattern in (_PARAM_RE, _DICT_RE):
        text = pattern.sub(lambda m: f"{m.group('name')}{m.group('eq')}{REDACTED}", text)
    text = _KEY_ID_RE.sub(lambda m: f"{m.group('name')}{m.group('eq')}{mask_key_id(m.group('value'))}", text)
    for secret in secrets:
        # Short values would redact unrelated text and are no real secret anyway.
        if secret and len(secret) >= 6:
            text = text.replace(secret, REDACTED)
    return text


def mask_key_id(access_key_id: str) -> str:
    """An AccessKey id shortened so it identifies the key to its owner without being copyable."""
    if len(access_key_id) <= 8:
        return "****"
    return f"{access_key_id[:4]}****{access_key_id[-4:]}"


class _ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the logger's problem, not ours
            return True
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_FILTER = _ScrubFilter()
# The SDK modules that log request parameters or server messages.
_SDK_LOGGERS = (
    "aliyunsdkcore",
    "aliyunsdkcore.client",
    "aliyunsdkcore.http.http_response",
    "aliyunsdkcore.retry.retry_condition",
)


def install_sdk_log_filter() -> None:
    """Attach the scrubbing filter to the SDK's loggers (idempotent).

    Filters on a logger only see records logged to that very logger, hence one per module.
    """
    for name in _SDK_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
