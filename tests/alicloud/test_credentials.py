"""Credential loading and keeping secrets out of text."""

from __future__ import annotations

import base64

import pytest

from alicloud.credentials import AccessKey, credentials_from_env, credentials_from_secret_data
from schemas.errors import BackupCenterError
from vault.redact import scrub

SECRET = "Zx9-very-secret-value"
TOKEN = "CAIS-sts-token-value-0123456789"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_from_env_plain_and_sts() -> None:
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5tEnvKey0001", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET}
    plain = credentials_from_env(env)
    assert (plain.access_key_id, plain.is_sts) == ("LTAI5tEnvKey0001", False)
    sts = credentials_from_env({**env, "ALIBABA_CLOUD_SECURITY_TOKEN": TOKEN})
    assert sts.is_sts and sts.security_token == TOKEN


def test_from_env_missing_names_the_variable() -> None:
    with pytest.raises(BackupCenterError) as caught:
        credentials_from_env({"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5tEnvKey0001"})
    assert caught.value.code == "CloudCredentialsMissing"
    assert "ALIBABA_CLOUD_ACCESS_KEY_SECRET" in caught.value.message


@pytest.mark.parametrize(
    ("id_key", "secret_key", "token_key"),
    [
        ("AccessKeyId", "AccessKeySecret", "SecurityToken"),
        ("access-key-id", "access-key-secret", "security-token"),
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN"),
    ],
)
def test_from_secret_data(id_key: str, secret_key: str, token_key: str) -> None:
    data = {
        id_key: _b64("LTAI5tSecretKey01\n"),
        secret_key: _b64(SECRET),
        token_key: _b64(TOKEN),
        "other": "eA==",
    }
    creds = credentials_from_secret_data(data)
    assert creds == AccessKey("LTAI5tSecretKey01", SECRET, TOKEN)


def test_from_secret_string_data() -> None:
    creds = credentials_from_secret_data(
        {"AccessKeyId": "LTAI5tPlain00001", "AccessKeySecret": SECRET}, encoded=False
    )
    assert creds.access_key_secret == SECRET and not creds.is_sts


def test_secret_errors_name_keys_never_values() -> None:
    with pytest.raises(BackupCenterError) as caught:
        credentials_from_secret_data({"AccessKeyId": _b64("LTAI5tSecretKey01")})
    assert "AccessKeySecret" in caught.value.message

    with pytest.raises(BackupCenterError) as caught:
        credentials_from_secret_data(
            {"AccessKeyId": _b64("LTAI5tSecretKey01"), "AccessKeySecret": "%%" + SECRET}
        )
    assert "not valid base64" in caught.value.message and SECRET not in str(caught.value)


def test_repr_masks_everything_secret() -> None:
    creds = AccessKey("LTAI5tSecretKey01", SECRET, TOKEN)
    for text in (repr(creds), str(creds), f"{creds}"):
        assert SECRET not in text and TOKEN not in text and "LTAI5tSecretKey01" not in text
        assert "LTAI****ey01" in text and "sts" in text


def test_scrub_removes_signed_request_material() -> None:
    message = (
        "Specified signature is not matched with our calculation. server string to sign is:"
        "POST&%2F&AccessKeyId%3DLTAI5tSecretKey01%26SecurityToken%3DCAIS-abc%26Signature%3Dxyz"
    )
    cleaned = scrub(message)
    assert "CAIS-abc" not in cleaned and "server string to sign is: <redacted>" in cleaned

    url = "/?AccessKeyId=LTAI5tSecretKey01&SecurityToken=CAIS-abc&Signature=c2lnbmF0dXJl"
    cleaned = scrub(url)
    assert "CAIS-abc" not in cleaned and "c2lnbmF0dXJl" not in cleaned
    assert "AccessKeyId=LTAI****ey01" in cleaned

    logged = "Params: {'SecurityToken': 'CAIS-abc', 'Action': 'DescribeSnapshots'}"
    assert "CAIS-abc" not in scrub(logged) and "DescribeSnapshots" in scrub(logged)
    assert SECRET not in scrub(f"oops {SECRET}", SECRET)
