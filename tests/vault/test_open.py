"""Bad input is refused with errors naming the field: URLs, regions, bucket names, encryption,
credentials."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from schemas.errors import BackupCenterError
from schemas.vault import StoreSpec, VaultSpec
from vault.credentials import CredentialsError, OssCredentials, credentials_from_env, credentials_from_secret
from vault.filestore import FileStore
from vault.open import from_validation_error, open_store, parse_store_spec
from vault.ossstore import OssStore


def field_error(**fields: object) -> tuple[str, str]:
    """(field, reason) of the InvalidSpec a spec with these fields gets."""
    with pytest.raises(ValidationError) as err:
        VaultSpec(**fields)
    product = from_validation_error(err.value)
    assert product.code == "InvalidSpec"
    return product.params["field"], product.params["reason"]


@pytest.mark.parametrize(("url", "reason"), [
    ("", "must be a URL"),
    ("bucket/prefix", "unsupported scheme"),
    ("s3://bucket/prefix", "unsupported scheme"),
    ("oss://", "has no bucket"),
    ("oss://bucket/a//b", "empty, '.' or '..' segments"),
    ("oss://bucket/../x", "empty, '.' or '..' segments"),
    ("oss://bucket/p?versionId=1", "query"),
    ("file://relative/path", "absolute path"),
    ("file:relative", "absolute path"),
    ("file:///a/../b", "'.' or '..'"),
])
def test_malformed_urls_name_the_url_field(url: str, reason: str) -> None:
    field, message = field_error(name="v", url=url, region="cn-hangzhou")
    assert field == "url" and reason in message


@pytest.mark.parametrize("bucket", ["ab", "a" * 64, "Upper-case", "under_score", "-leading", "trailing-",
                                    "dot.ted", "spa ce"])
def test_invalid_bucket_names(bucket: str) -> None:
    field, message = field_error(name="v", url=f"oss://{bucket}/p", region="cn-hangzhou")
    assert field == "url" and "bucket name" in message and "3-63" in message


@pytest.mark.parametrize("bucket", ["abc", "a" * 63, "my-backups-2024", "0-9"])
def test_valid_bucket_names(bucket: str) -> None:
    assert VaultSpec(name="v", url=f"oss://{bucket}/p", region="cn-hangzhou").location == (bucket, "p")


def test_regions() -> None:
    assert field_error(name="v", url="oss://bucket/p", region="cn-atlantis") == (
        "region", "'cn-atlantis' is not an Alibaba Cloud region with OSS (e.g. cn-hangzhou, ap-southeast-1)")
    assert field_error(name="v", url="oss://bucket/p")[0] == "region"  # required for oss://
    assert field_error(name="v", url="file:///tmp/v", region="cn-hangzhou")[0] == "region"
    assert VaultSpec(name="v", url="oss://bucket/p", region="oss-ap-southeast-1").region == "ap-southeast-1"
    # An explicit endpoint (the local server, a private endpoint) makes the region optional.
    assert VaultSpec(name="v", url="oss://bucket/p", endpoint="http://127.0.0.1:9000").region is None


OSS = {"url": "oss://bucket/p", "region": "cn-hangzhou"}


@pytest.mark.parametrize(("fields", "field"), [
    ({**OSS, "network": "vpc"}, "network"),
    ({**OSS, "encryption": "aes"}, "encryption"),
    ({**OSS, "kms_key_id": "k1"}, "kms_key_id"),
    ({**OSS, "encryption": "kms", "kms_key_id": " "}, "kms_key_id"),
    ({"url": "file:///tmp/v", "encryption": "oss-managed"}, "encryption"),
    ({"url": "file:///tmp/v", "network": "public"}, "network"),
    ({"url": "oss://bucket/p", "endpoint": "not a url"}, "endpoint"),
    ({**OSS, "access_key_secret": "x"}, "access_key_secret"),  # secrets never go into a spec
    ({**OSS, "credentials": {"name": "Bad_Name"}}, "credentials.name"),
])
def test_other_fields(fields: dict[str, object], field: str) -> None:
    assert field_error(name="v", **fields)[0] == field


def test_vault_name_must_be_a_kubernetes_name() -> None:
    assert field_error(name="My_Vault", url="file:///tmp/v")[0] == "name"


def test_urls_are_normalised_so_equal_specs_compare_equal() -> None:
    a = VaultSpec(name="v", url="oss://bucket/p/q/", region="cn-hangzhou")
    b = VaultSpec(name="v", url="oss://bucket/p/q", region="cn-hangzhou")
    assert a == b and a.url == "oss://bucket/p/q"
    assert VaultSpec(name="v", url="file:///tmp/v/").url == "file:///tmp/v"
    public = VaultSpec(name="v", url="oss://bucket/p/q", region="cn-hangzhou", network="public")
    assert a.differences(public) == ["network: 'internal' -> 'public'"]


def test_open_store_picks_the_backend(tmp_path: object) -> None:
    assert isinstance(open_store(f"file://{tmp_path}"), FileStore)
    spec = StoreSpec(url="oss://bucket/pre", region="cn-shanghai", network="public", encryption="kms",
                     kms_key_id="k")
    store = open_store(spec, credentials=OssCredentials("ak", "secret"))
    assert isinstance(store, OssStore)
    assert store.endpoint == "https://oss-cn-shanghai.aliyuncs.com" and store.prefix == "pre/"
    assert store.kms_key_id == "k"


def test_open_store_names_bad_fields() -> None:
    with pytest.raises(BackupCenterError) as err:
        parse_store_spec("oss://UPPER/x", region="cn-hangzhou")
    assert err.value.params["field"] == "url"
    assert err.value.short().startswith("ValidationError: invalid url:")


def test_open_store_without_credentials_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALIBABA_CLOUD_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", raising=False)
    with pytest.raises(BackupCenterError) as err:
        open_store(StoreSpec(url="oss://bucket/p", region="cn-hangzhou"))
    assert err.value.params["field"] == "credentials"
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAI-env")
    with pytest.raises(BackupCenterError, match="ALIBABA_CLOUD_ACCESS_KEY_SECRET is not set"):
        open_store(StoreSpec(url="oss://bucket/p", region="cn-hangzhou"))
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "env-secret")
    assert isinstance(open_store(StoreSpec(url="oss://bucket/p", region="cn-hangzhou")), OssStore)


def test_credentials_from_env() -> None:
    assert credentials_from_env({}) is None
    creds = credentials_from_env({"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI1234567890",
                                  "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s3cr3t-value",
                                  "ALIBABA_CLOUD_SECURITY_TOKEN": "sts-token-value"})
    assert creds == OssCredentials("LTAI1234567890", "s3cr3t-value", "sts-token-value")
    shown = repr(creds)
    assert "s3cr3t" not in shown and "sts-token" not in shown and "LTAI1234567890" not in shown


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_credentials_from_secret_data() -> None:
    data = {"access-key-id": b64("LTAI-secret-id"), "access-key-secret": b64("the-secret")}
    assert credentials_from_secret(data) == OssCredentials("LTAI-secret-id", "the-secret")
    aliases = {"akId": b64("LTAI-x"), "akSecret": b64("y-secret"), "SecurityToken": b64("tok")}
    assert credentials_from_secret(aliases) == OssCredentials("LTAI-x", "y-secret", "tok")
    plain = {"AccessKeyId": "LTAI-plain", "AccessKeySecret": "plain-secret"}
    assert credentials_from_secret(plain, base64_encoded=False).access_key_id == "LTAI-plain"


@pytest.mark.parametrize(("data", "message"), [
    ({"access-key-id": b64("LTAI-x")}, "has no 'access-key-secret' or 'accessKeySecret' key"),
    ({}, "has no 'access-key-id' or 'accessKeyId' key"),
    ({"access-key-id": "not base64!", "access-key-secret": b64("s")}, "'access-key-id' is not valid base64"),
])
def test_bad_secret_data(data: dict[str, str], message: str) -> None:
    with pytest.raises(CredentialsError, match=message) as err:
        credentials_from_secret(data, secret_name="Secret backup-center/oss-keys")
    assert str(err.value).startswith("Secret backup-center/oss-keys")
