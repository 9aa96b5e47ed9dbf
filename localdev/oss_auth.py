"""Who signed a request to the local OSS server: OSS signature version 1 (``Authorization: OSS
<ak>:<signature>``, what oss2 signs by default), the Date window and STS security tokens, with OSS's
error codes (see localdev/oss_server.py)."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import time
from collections.abc import Mapping

from localdev.oss_buckets import BucketError

MAX_SKEW = 15 * 60  # OSS refuses requests whose Date is further off than this

# Query parameters that are part of the V1 canonicalized resource (OSS API reference, "Signature
# version 1"): only these are signed, every other query parameter is not.
SUBRESOURCES = frozenset({
    "acl", "append", "bucketInfo", "callback", "callback-var", "cname", "comp", "continuation-token",
    "cors", "delete", "encryption", "endTime", "group", "img", "inventory", "inventoryId", "lifecycle",
    "link", "live", "location", "logging", "objectInfo", "objectMeta", "partNumber", "policy", "position",
    "qos", "qosInfo", "referer", "replication", "replicationLocation", "replicationProgress",
    "requestPayment", "response-cache-control", "response-content-disposition",
    "response-content-encoding", "response-content-language", "response-content-type",
    "response-expires", "restore", "security-token", "sequential", "startTime", "stat", "status",
    "style", "styleName", "symlink", "tagging", "uploadId", "uploads", "versionId", "versioning",
    "versions", "vod", "website", "worm", "wormExtend", "wormId", "x-oss-process",
    "x-oss-traffic-limit",
})


def verify_v1(method: str, headers: Mapping[str, str], bucket: str, key: str, params: Mapping[str, str], *,
              keys: Mapping[str, str], security_tokens: Mapping[str, str]) -> str:
    """Check the V1 signature, in the Authorization header or in the URL (a presigned URL:
    ``OSSAccessKeyId``, ``Expires``, ``Signature``); returns the access key id or raises BucketError."""
    auth = headers.get("authorization", "")
    if not auth and "Signature" in params:
        return _verify_url(method, headers, bucket, key, params, keys=keys, security_tokens=security_tokens)
    if not auth:
        raise BucketError(403, "AccessDenied", "AccessDenied: anonymous access is not allowed.")
    scheme, _, credential = auth.partition(" ")
    if scheme != "OSS" or ":" not in credential:
        raise BucketError(400, "InvalidArgument", "Authorization header is invalid "
                                                  "(the local OSS server accepts OSS V1 signatures).")
    access_key_id, _, signature = credential.rpartition(":")
    secret = _secret(access_key_id, keys)
    token = security_tokens.get(access_key_id)
    if token is not None and headers.get("x-oss-security-token") != token:
        raise BucketError(403, "InvalidAccessKeyId", "The security token you provided is invalid.")
    date = headers.get("x-oss-date") or headers.get("date", "")
    try:
        sent = email.utils.parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        raise BucketError(403, "AccessDenied", "Invalid date or missing Date header.") from None
    if abs(time.time() - sent) > MAX_SKEW:
        raise BucketError(403, "RequestTimeTooSkewed",
                          "The difference between the request time and the current time is too large.")
    _check(secret, signature, _string_to_sign(method, headers, bucket, key, params, date))
    return access_key_id


def _verify_url(method: str, headers: Mapping[str, str], bucket: str, key: str, params: Mapping[str, str], *,
                keys: Mapping[str, str], security_tokens: Mapping[str, str]) -> str:
    access_key_id = params.get("OSSAccessKeyId", "")
    secret = _secret(access_key_id, keys)
    token = security_tokens.get(access_key_id)
    if token is not None and params.get("security-token") != token:
        raise BucketError(403, "InvalidAccessKeyId", "The security token you provided is invalid.")
    expires = params.get("Expires", "")
    if not expires.isdigit():
        raise BucketError(403, "AccessDenied", "Invalid expires value in the URL.")
    if int(expires) < time.time():
        raise BucketError(403, "AccessDenied", "Request has expired.")
    _check(secret, params["Signature"], _string_to_sign(method, headers, bucket, key, params, expires))
    return access_key_id


def _secret(access_key_id: str, keys: Mapping[str, str]) -> str:
    secret = keys.get(access_key_id)
    if secret is None:
        raise BucketError(403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist "
                                                     "in our records.")
    return secret


def _string_to_sign(method: str, headers: Mapping[str, str], bucket: str, key: str,
                    params: Mapping[str, str], date: str) -> bytes:
    """V1's string to sign, as bytes.  Header values go in as the bytes that were sent (the HTTP
    server decoded them as Latin-1), so UTF-8 user metadata signs as the client signed it."""
    oss_headers = sorted((k.lower(), v) for k, v in headers.items() if k.lower().startswith("x-oss-"))
    canonical_headers = b"".join(f"{k}:".encode() + _raw(v) + b"\n" for k, v in oss_headers)
    sub = sorted((k, v) for k, v in params.items() if k in SUBRESOURCES)
    resource = f"/{bucket}/{key}" if bucket else "/"
    if sub:
        resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in sub)
    head = [method, headers.get("content-md5", ""), headers.get("content-type", ""), date]
    return b"\n".join(_raw(v) for v in head) + b"\n" + canonical_headers + resource.encode()


def _raw(value: str) -> bytes:
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode()


def _check(secret: str, signature: str, string_to_sign: bytes) -> None:
    expected = base64.b64encode(hmac.new(secret.encode(), string_to_sign, hashlib.sha1).digest()).decode()
    if not hmac.compare_digest(expected, signature):
        raise BucketError(403, "SignatureDoesNotMatch",
                          "The request signature we calculated does not match the signature you "
                          "provided. Check your key and signing method.")
