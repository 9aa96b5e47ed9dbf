"""The local OSS server (a test double): protocol details the product relies on, checked through oss2
and raw HTTP, so a change to the double cannot silently make the OssStore tests meaningless."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import os
import time
from pathlib import Path

import oss2
import pytest
import requests

from localdev.oss_crc64 import crc64, crc64_combine
from localdev.oss_server import LocalOssServer
from tests.vault.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET


@pytest.fixture
def raw(oss_server: LocalOssServer, bucket: str) -> oss2.Bucket:
    return oss2.Bucket(oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET), oss_server.endpoint, bucket)


def oss_error(call: object) -> oss2.exceptions.OssError:
    with pytest.raises(oss2.exceptions.OssError) as err:
        call()  # type: ignore[operator]
    return err.value


def test_crc64_is_ecma_182_as_oss_computes_it() -> None:
    assert crc64(b"123456789") == 0x995DC9BBDF1939FA  # the published check value of CRC-64/XZ
    a, b = os.urandom(1000), os.urandom(300_001)
    assert crc64_combine(crc64(a), crc64(b), len(b)) == crc64(a + b)
    assert crc64(b, crc64(a)) == crc64(a + b)
    sdk = oss2.utils.Crc64()
    sdk.update(a + b)
    assert sdk.crc == crc64(a + b)


def test_put_get_reports_crc_md5_and_metadata(raw: oss2.Bucket) -> None:
    data = b"hello vault"
    put = raw.put_object("k", data, headers={"x-oss-meta-owner": "cluster-a"})
    assert put.crc == crc64(data)
    assert put.etag == hashlib.md5(data).hexdigest().upper()
    got = raw.get_object("k")
    assert got.read() == data
    assert got.headers["x-oss-meta-owner"] == "cluster-a"
    assert got.server_crc == crc64(data)
    assert got.request_id


def test_errors_are_oss_xml_with_request_ids(oss_server: LocalOssServer, raw: oss2.Bucket) -> None:
    err = oss_error(lambda: raw.get_object("missing"))
    assert (err.status, err.code) == (404, "NoSuchKey") and err.request_id
    head = oss_error(lambda: raw.head_object("missing"))  # no body on HEAD: x-oss-err header
    assert head.code == "NoSuchKey"
    other = oss2.Bucket(oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET), oss_server.endpoint, "nonexistent")
    assert oss_error(lambda: other.get_bucket_info()).code == "NoSuchBucket"
    reply = requests.get(f"{oss_server.endpoint}/{raw.bucket_name}/k", timeout=5)
    assert reply.status_code == 403 and "<Code>AccessDenied</Code>" in reply.text
    assert reply.headers["x-oss-request-id"] in reply.text


def test_signatures_are_verified(oss_server: LocalOssServer, raw: oss2.Bucket) -> None:
    raw.put_object("k", b"x")
    bad = oss2.Bucket(oss2.Auth(ACCESS_KEY_ID, "not-the-secret"), oss_server.endpoint, raw.bucket_name)
    assert oss_error(lambda: bad.get_object("k")).code == "SignatureDoesNotMatch"
    unknown = oss2.Bucket(oss2.Auth("LTAI-unknown", ACCESS_KEY_SECRET), oss_server.endpoint, raw.bucket_name)
    assert oss_error(lambda: unknown.get_object("k")).code == "InvalidAccessKeyId"
    # A signature is bound to its request: replaying it for another key fails.
    req = oss2.http.Request("GET", f"{oss_server.endpoint}/{raw.bucket_name}/k")
    raw.auth._sign_request(req, raw.bucket_name, "k")
    replay = requests.get(f"{oss_server.endpoint}/{raw.bucket_name}/other", headers=dict(req.headers),
                          timeout=5)
    assert "<Code>SignatureDoesNotMatch</Code>" in replay.text
    # An old Date is refused even with a right signature.
    old = oss2.http.Request("GET", f"{oss_server.endpoint}/{raw.bucket_name}/k")
    raw.auth._sign_request(old, raw.bucket_name, "k")
    stale_date = email.utils.formatdate(time.time() - 3600, usegmt=True)
    old.headers["date"] = stale_date
    string_to_sign = f"GET\n\n\n{stale_date}\n/{raw.bucket_name}/k"
    signature = base64.b64encode(hmac.new(ACCESS_KEY_SECRET.encode(), string_to_sign.encode(),
                                          hashlib.sha1).digest()).decode()
    old.headers["authorization"] = f"OSS {ACCESS_KEY_ID}:{signature}"
    skewed = requests.get(f"{oss_server.endpoint}/{raw.bucket_name}/k", headers=dict(old.headers), timeout=5)
    assert "<Code>RequestTimeTooSkewed</Code>" in skewed.text


def test_virtual_host_style_is_served(oss_server: LocalOssServer, raw: oss2.Bucket) -> None:
    raw.put_object("vh", b"virtual host")
    port = oss_server.endpoint.rsplit(":", 1)[1]
    req = oss2.http.Request("GET", f"http://127.0.0.1:{port}/vh")
    raw.auth._sign_request(req, raw.bucket_name, "vh")
    reply = requests.get(f"http://127.0.0.1:{port}/vh", timeout=5,
                         headers={**dict(req.headers), "Host": f"{raw.bucket_name}.oss-local.test:{port}"})
    assert reply.status_code == 200 and reply.content == b"virtual host"


def test_ranges_standard_and_legacy(raw: oss2.Bucket) -> None:
    raw.put_object("r", b"0123456789")
    part = raw.get_object("r", byte_range=(2, 4))
    assert (part.status, part.read(), part.content_range) == (206, b"234", "bytes 2-4/10")
    assert raw.get_object("r", byte_range=(None, 3)).read() == b"789"  # suffix range
    assert raw.get_object("r", byte_range=(20, 30)).read() == b"0123456789"  # legacy: whole object
    standard = {"x-oss-range-behavior": "standard"}
    err = oss_error(lambda: raw.get_object("r", byte_range=(20, 30), headers=standard))
    assert (err.status, err.code) == (416, "InvalidRange")


def test_forbid_overwrite(raw: oss2.Bucket) -> None:
    raw.put_object("once", b"1", headers={"x-oss-forbid-overwrite": "true"})
    err = oss_error(lambda: raw.put_object("once", b"2", headers={"x-oss-forbid-overwrite": "true"}))
    assert (err.status, err.code) == (409, "FileAlreadyExists")
    upload = raw.init_multipart_upload("mp").upload_id
    part = raw.upload_part("mp", upload, 1, b"x" * 10)
    raw.put_object("mp", b"someone else was first")
    parts = [oss2.models.PartInfo(1, part.etag)]
    err = oss_error(lambda: raw.complete_multipart_upload("mp", upload, parts,
                                                           headers={"x-oss-forbid-overwrite": "true"}))
    assert err.code == "FileAlreadyExists"
    raw.abort_multipart_upload("mp", upload)


def test_multipart_rules(raw: oss2.Bucket) -> None:
    upload = raw.init_multipart_upload("mp").upload_id
    small = raw.upload_part("mp", upload, 1, b"a" * 1000)
    last = raw.upload_part("mp", upload, 2, b"b" * 10)
    assert [(p.part_number, p.size) for p in raw.list_parts("mp", upload).parts] == [(1, 1000), (2, 10)]
    err = oss_error(lambda: raw.complete_multipart_upload(
        "mp", upload, [oss2.models.PartInfo(1, small.etag), oss2.models.PartInfo(2, last.etag)]))
    assert err.code == "EntityTooSmall"
    err = oss_error(lambda: raw.complete_multipart_upload("mp", upload, [oss2.models.PartInfo(1, "0" * 32)]))
    assert err.code == "InvalidPart"
    big = raw.upload_part("mp", upload, 1, b"a" * 200_000)
    done = raw.complete_multipart_upload(
        "mp", upload, [oss2.models.PartInfo(1, big.etag), oss2.models.PartInfo(2, last.etag)])
    assert done.crc == crc64(b"a" * 200_000 + b"b" * 10)
    assert raw.head_object("mp").etag.endswith("-2")
    assert oss_error(lambda: raw.abort_multipart_upload("mp", upload)).code == "NoSuchUpload"


def test_listing_v1_and_v2_with_markers(raw: oss2.Bucket) -> None:
    for key in ["a/1", "a/2", "b/1", "c", "d/x/y"]:
        raw.put_object(key, b"x")
    v1 = [o.key for o in oss2.ObjectIterator(raw, delimiter="/", max_keys=1)]
    v2 = [o.key for o in oss2.ObjectIteratorV2(raw, delimiter="/", max_keys=1)]
    assert sorted(v1) == sorted(v2) == ["a/", "b/", "c", "d/"]
    assert [o.key for o in oss2.ObjectIterator(raw, prefix="a/", max_keys=1)] == ["a/1", "a/2"]
    assert [o.key for o in oss2.ObjectIteratorV2(raw, start_after="b/1")] == ["c", "d/x/y"]


def test_bucket_info_and_storage_class(oss_server: LocalOssServer) -> None:
    oss_server.create_bucket("cold-bucket", storage_class="ColdArchive")
    cold = oss2.Bucket(oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET), oss_server.endpoint, "cold-bucket")
    info = cold.get_bucket_info()
    assert info.storage_class == "ColdArchive" and info.location == "oss-cn-hangzhou"
    assert info.intranet_endpoint == "oss-cn-hangzhou-internal.aliyuncs.com"


def test_content_md5_is_checked(raw: oss2.Bucket) -> None:
    wrong = base64.b64encode(b"\x00" * 16).decode()
    err = oss_error(lambda: raw.put_object("k", b"x", headers={"Content-MD5": wrong}))
    assert err.code == "InvalidDigest"


def test_faults_over_http_and_stats(oss_server: LocalOssServer, raw: oss2.Bucket) -> None:
    reply = requests.put(f"{oss_server.endpoint}/-/faults", json={"error_rate": 1.0}, timeout=5)
    assert reply.json()["error_rate"] == 1.0
    err = oss_error(lambda: raw.put_object("k", b"x"))
    assert err.status in (500, 503)
    assert requests.get(f"{oss_server.endpoint}/-/stats", timeout=5).json()["injected_errors"] >= 1
    requests.delete(f"{oss_server.endpoint}/-/faults", timeout=5)
    raw.put_object("k", b"x")
    invalid = requests.put(f"{oss_server.endpoint}/-/faults", json={"drop_rate": 2}, timeout=5)
    assert invalid.status_code == 400


def test_data_survives_a_restart(tmp_path: Path) -> None:
    first = LocalOssServer(tmp_path, keys={"ak": "sk"})
    endpoint = first.start()
    first.create_bucket("keep")
    bucket = oss2.Bucket(oss2.Auth("ak", "sk"), endpoint, "keep")
    bucket.put_object("k", b"persisted")
    upload = bucket.init_multipart_upload("pending").upload_id
    first.stop()
    second = LocalOssServer(tmp_path, keys={"ak": "sk"})
    endpoint = second.start()
    try:
        bucket = oss2.Bucket(oss2.Auth("ak", "sk"), endpoint, "keep")
        assert bucket.get_object("k").read() == b"persisted"
        assert [u.upload_id for u in oss2.MultipartUploadIterator(bucket)] == [upload]
    finally:
        second.stop()


def test_bucket_names_follow_oss_rules(oss_server: LocalOssServer) -> None:
    with pytest.raises(ValueError, match="not valid"):
        oss_server.create_bucket("No_Such")
    # oss2 refuses such names itself, so sign a PutBucket by hand.
    req = oss2.http.Request("PUT", f"{oss_server.endpoint}/ab/")
    oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET)._sign_request(req, "ab", "")
    reply = requests.put(f"{oss_server.endpoint}/ab/", headers=dict(req.headers), timeout=5)
    assert reply.status_code == 400 and "<Code>InvalidBucketName</Code>" in reply.text


def test_conditional_reads_answer_as_oss_does(raw: oss2.Bucket) -> None:
    """If-Match / If-None-Match / If-(Un)Modified-Since on GET and HEAD, in the order of RFC 7232:
    a failed If-Match is 412 PreconditionFailed naming the condition; a matching If-None-Match is 304."""
    old = raw.put_object("obj", b"first version").etag
    raw.put_object("obj", b"second, replaced version")
    current = raw.head_object("obj")
    stale = {"If-Match": f'"{old}"'}
    err = oss_error(lambda: raw.get_object("obj", byte_range=(0, 4), headers=stale))
    assert (err.status, err.code) == (412, "PreconditionFailed")
    assert err.details.get("Condition") == "If-Match"
    assert oss_error(lambda: raw.head_object("obj", headers=stale)).status == 412
    same = {"If-Match": f'"{current.etag}"'}
    assert raw.get_object("obj", byte_range=(0, 5), headers=same).read() == b"second"
    assert raw.get_object("obj", headers={"If-Match": "*"}).read() == b"second, replaced version"

    with pytest.raises(oss2.exceptions.NotModified):
        raw.get_object("obj", headers={"If-None-Match": f'"{current.etag}"'})
    assert raw.get_object("obj", headers={"If-None-Match": f'"{old}"'}).read().startswith(b"second")

    modified = email.utils.parsedate_to_datetime(current.headers["Last-Modified"]).timestamp()
    later = email.utils.formatdate(modified + 60, usegmt=True)
    earlier = email.utils.formatdate(modified - 60, usegmt=True)
    with pytest.raises(oss2.exceptions.NotModified):
        raw.get_object("obj", headers={"If-Modified-Since": later})
    assert raw.get_object("obj", headers={"If-Modified-Since": earlier}).read().startswith(b"second")
    unmodified = oss_error(lambda: raw.get_object("obj", headers={"If-Unmodified-Since": earlier}))
    assert (unmodified.status, unmodified.details.get("Condition")) == (412, "If-Unmodified-Since")
    assert raw.get_object("obj", headers={"If-Unmodified-Since": later}).read().startswith(b"second")
    # If-Match decides alone when both are sent (RFC 7232 3.4), as does If-None-Match over If-Modified-Since.
    assert raw.get_object("obj", headers={**same, "If-Unmodified-Since": earlier}).read()
    with pytest.raises(oss2.exceptions.NotModified):
        raw.get_object("obj", headers={"If-None-Match": f'"{current.etag}"', "If-Modified-Since": earlier})
    # A date that does not parse is ignored.
    assert raw.get_object("obj", headers={"If-Modified-Since": "yesterday"}).read()


def test_what_the_double_does_not_implement_is_refused(oss_server: LocalOssServer, raw: oss2.Bucket) -> None:
    raw.put_object("k", b"data")
    for call in (lambda: raw.get_bucket_acl(), lambda: raw.get_object_acl("k"),
                 lambda: raw.get_object_tagging("k"), lambda: raw.get_bucket_lifecycle()):
        err = oss_error(call)
        assert (err.status, err.code) == (501, "NotImplemented") and "local OSS server" in err.message
    upload = raw.init_multipart_upload("big").upload_id
    copy = oss_error(lambda: raw.upload_part_copy(raw.bucket_name, "k", (0, 3), "big", upload, 1))
    assert (copy.status, copy.code) == (501, "NotImplemented")
    assert raw.list_parts("big", upload).parts == []  # and nothing was stored
    delimited = oss_error(lambda: raw.list_multipart_uploads(delimiter="/"))
    assert delimited.code == "NotImplemented"
    token = oss_error(lambda: raw.list_objects_v2(continuation_token="not*base64"))
    assert (token.status, token.code) == (400, "InvalidArgument")
    name = oss_error(lambda: raw.put_object("\\windows\\path", b"x"))
    assert (name.status, name.code) == (400, "InvalidObjectName")


def test_answers_carry_one_date_header(oss_server: LocalOssServer, raw: oss2.Bucket) -> None:
    raw.put_object("k", b"data")
    answer = raw.get_object("k")
    assert len(answer.resp.response.raw.headers.getlist("Date")) == 1


def test_list_buckets_copy_and_delete_many(oss_server: LocalOssServer, raw: oss2.Bucket) -> None:
    service = oss2.Service(oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET), oss_server.endpoint)
    names = [b.name for b in service.list_buckets().buckets]
    assert raw.bucket_name in names and names == sorted(names)
    paged = service.list_buckets(prefix=raw.bucket_name, max_keys=1)
    assert [b.name for b in paged.buckets] == [raw.bucket_name]

    raw.put_object("src", b"copied bytes", headers={"x-oss-meta-owner": "a"})
    copied = raw.copy_object(raw.bucket_name, "src", "dst")
    source = raw.head_object("src")
    assert copied.etag == source.etag
    got = raw.get_object("dst")
    assert got.read() == b"copied bytes" and got.headers["x-oss-meta-owner"] == "a"
    assert got.server_crc == source.server_crc
    replaced = raw.copy_object(raw.bucket_name, "src", "dst2",
                               headers={"x-oss-metadata-directive": "REPLACE", "x-oss-meta-owner": "b"})
    assert replaced.etag == source.etag and raw.head_object("dst2").headers["x-oss-meta-owner"] == "b"
    missing = oss_error(lambda: raw.copy_object(raw.bucket_name, "nope", "dst3"))
    assert missing.code == "NoSuchKey"
    forbid = oss_error(lambda: raw.copy_object(raw.bucket_name, "src", "dst",
                                               headers={"x-oss-forbid-overwrite": "true"}))
    assert forbid.code == "FileAlreadyExists"

    result = raw.batch_delete_objects(["src", "dst", "dst2", "never-there"])
    assert sorted(result.deleted_keys) == ["dst", "dst2", "never-there", "src"]
    assert not raw.object_exists("src") and not raw.object_exists("dst")


# --- found by the oss2 conformance run (tests/conformance) -----------------------------------
def test_detailed_error_code_where_oss_gives_one(raw: oss2.Bucket) -> None:
    err = oss_error(lambda: raw.get_object("missing"))
    assert err.ec == "0026-00000001" and err.headers["x-oss-ec"] == "0026-00000001"
    assert oss_error(lambda: raw.head_object("missing")).ec == "0026-00000001"


def test_utf8_user_metadata_signs_and_comes_back(raw: oss2.Bucket) -> None:
    raw.put_object("meta", b"x", headers={"x-oss-meta-owner": "测试".encode()})
    sent = raw.head_object("meta").headers["x-oss-meta-owner"]
    assert sent.encode("iso-8859-1").decode() == "测试"


def test_presigned_urls_are_checked_like_signed_headers(raw: oss2.Bucket) -> None:
    raw.put_object("shared", b"shared bytes")
    assert requests.get(raw.sign_url("GET", "shared", 60), timeout=10).content == b"shared bytes"
    put = requests.put(raw.sign_url("PUT", "uploaded", 60), data=b"via url", timeout=10)
    assert put.status_code == 200 and raw.get_object("uploaded").read() == b"via url"
    expired = requests.get(raw.sign_url("GET", "shared", -5), timeout=10)
    assert expired.status_code == 403 and b"Request has expired" in expired.content
    forged = raw.sign_url("GET", "shared", 60).replace("shared?", "uploaded?")
    answer = requests.get(forged, timeout=10)
    assert answer.status_code == 403 and b"SignatureDoesNotMatch" in answer.content


def test_batch_delete_takes_keys_with_control_characters(raw: oss2.Bucket) -> None:
    keys = ["form\x0cfeed", "<angle>", "bell\x07"]
    for key in keys:
        raw.put_object(key, b"x")
    assert sorted(raw.batch_delete_objects(keys).deleted_keys) == sorted(keys)
    assert not any(raw.object_exists(k) for k in keys)


def test_complete_all_parts_and_response_overrides(raw: oss2.Bucket) -> None:
    upload = raw.init_multipart_upload("all").upload_id
    raw.upload_part("all", upload, 2, b"b" * 10)
    raw.upload_part("all", upload, 1, b"a" * 102400)  # every part but the last: 100 KB or more
    raw.complete_multipart_upload("all", upload, None, headers={"x-oss-complete-all": "yes"})
    got = raw.get_object("all", params={"response-content-type": "text/plain",
                                        "response-content-disposition": "attachment"})
    assert got.read() == b"a" * 102400 + b"b" * 10
    assert got.headers["Content-Type"] == "text/plain"
    assert got.headers["Content-Disposition"] == "attachment"


def test_what_is_not_implemented_is_refused(raw: oss2.Bucket) -> None:
    tagged = oss_error(lambda: raw.put_object("t", b"x", headers={"x-oss-tagging": "a=b"}))
    assert (tagged.status, tagged.code) == (501, "NotImplemented") and "tagging" in tagged.message
    public = oss_error(lambda: raw.put_object("p", b"x", headers={"x-oss-object-acl": "public-read"}))
    assert public.code == "NotImplemented" and not raw.object_exists("p")
    raw.put_object("private", b"x", headers={"x-oss-object-acl": "private"})  # what every object is
    assert raw.list_live_channel().channels == []  # none can exist: creating one is refused
    live = oss_error(lambda: raw.create_live_channel("ch", oss2.models.LiveChannelInfo(
        target=oss2.models.LiveChannelInfoTarget())))
    assert live.code == "NotImplemented"


def test_an_archived_object_is_not_readable_until_restored(raw: oss2.Bucket) -> None:
    raw.put_object("cold", b"x", headers={"x-oss-storage-class": "Archive"})
    assert raw.head_object("cold").headers["x-oss-storage-class"] == "Archive"
    assert next(iter(oss2.ObjectIterator(raw))).storage_class == "Archive"
    err = oss_error(lambda: raw.get_object("cold"))
    assert (err.status, err.code) == (403, "InvalidObjectState")
    bad = oss_error(lambda: raw.put_object("odd", b"x", headers={"x-oss-storage-class": "Frozen"}))
    assert (bad.status, bad.code) == (400, "InvalidArgument")
