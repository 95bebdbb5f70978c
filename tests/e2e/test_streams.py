"""Stream control plane through unmodified boto3: CreateStream, DescribeStream, ListStreams,
UpdateStream, UpdateDataRetention, DeleteStream, GetDataEndpoint (kvs-api.md §2)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from e2e_support import ACCOUNT_ID, REGION, expect_error, stream_arn_regex, unique, wait_until

API_NAMES = ["PUT_MEDIA", "GET_MEDIA", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST",
             "GET_HLS_STREAMING_SESSION_URL", "GET_DASH_STREAMING_SESSION_URL", "GET_CLIP",
             "GET_IMAGES"]


def describe(kvs, **kw):
    return kvs.describe_stream(**kw)["StreamInfo"]


def test_create_stream_returns_arn_and_is_active(kvs, name):
    before = dt.datetime.now(dt.timezone.utc)
    resp = kvs.create_stream(StreamName=name, MediaType="video/h264", DeviceName="cam-1",
                             DataRetentionInHours=24)
    arn = resp["StreamARN"]
    assert re.match(stream_arn_regex(name), arn), f"StreamARN {arn!r} is not shaped like " \
        f"arn:aws:kinesisvideo:{REGION}:{ACCOUNT_ID}:stream/{name}/<epoch-ms>"
    created_ms = int(arn.rsplit("/", 1)[1])
    assert abs(created_ms / 1000 - before.timestamp()) < 60, \
        f"ARN creation suffix {created_ms} is not the creation time in epoch ms"

    info = describe(kvs, StreamName=name)
    assert info["StreamName"] == name
    assert info["StreamARN"] == arn
    assert info["Status"] == "ACTIVE", f"stream must be ACTIVE immediately, got {info['Status']}"
    assert info["MediaType"] == "video/h264"
    assert info["DeviceName"] == "cam-1"
    assert info["DataRetentionInHours"] == 24
    assert re.fullmatch(r"[a-zA-Z0-9]{1,64}", info["Version"]), f"bad Version {info['Version']!r}"
    ct = info["CreationTime"]
    assert isinstance(ct, dt.datetime), f"CreationTime not parsed as timestamp: {ct!r}"
    assert abs((ct - before).total_seconds()) < 60, f"CreationTime {ct} far from now {before}"


def test_create_stream_defaults(kvs, name):
    kvs.create_stream(StreamName=name)
    info = describe(kvs, StreamName=name)
    assert info["Status"] == "ACTIVE"
    assert info["DataRetentionInHours"] == 0, f"default retention must be 0, got {info}"


def test_describe_stream_by_arn(kvs, stream):
    name, arn = stream
    info = describe(kvs, StreamARN=arn)
    assert info["StreamName"] == name and info["StreamARN"] == arn


def test_create_duplicate_is_resource_in_use(kvs, stream):
    name, _ = stream
    expect_error(kvs.create_stream, "ResourceInUseException", 400, StreamName=name)


@pytest.mark.parametrize("bad", ["bad name", "bad/name", "näme", "x" * 257, "a:b"])
def test_create_stream_bad_name_is_invalid_argument(kvs, bad):
    expect_error(kvs.create_stream, "InvalidArgumentException", 400, StreamName=bad)


@pytest.mark.parametrize("field,value", [
    ("MediaType", "not a media type"),
    ("MediaType", "video"),
    ("DeviceName", "bad device!"),
    ("DataRetentionInHours", 87601),
])
def test_create_stream_bad_members_are_invalid_argument(kvs, field, value):
    name = unique("badm")
    expect_error(kvs.create_stream, "InvalidArgumentException", 400,
                 StreamName=name, **{field: value})
    expect_error(kvs.describe_stream, "ResourceNotFoundException", 404, StreamName=name)


def test_create_stream_bad_tags_are_invalid_argument(kvs):
    expect_error(kvs.create_stream, "InvalidArgumentException", 400,
                 StreamName=unique("badt"), Tags={"k" * 129: "v"})
    expect_error(kvs.create_stream, "InvalidArgumentException", 400,
                 StreamName=unique("badt"), Tags={"k": "v" * 257})


def test_create_stream_too_many_tags(kvs, name):
    tags = {f"k{i}": "v" for i in range(51)}
    expect_error(kvs.create_stream, "TagsPerResourceExceededLimitException", 400,
                 StreamName=name, Tags=tags)
    expect_error(kvs.describe_stream, "ResourceNotFoundException", 404, StreamName=name)


def test_describe_missing_stream_is_404(kvs):
    e = expect_error(kvs.describe_stream, "ResourceNotFoundException", 404,
                     StreamName=unique("missing"))
    assert e.response["Error"]["Message"], "error message must not be empty"
    missing_arn = f"arn:aws:kinesisvideo:{REGION}:{ACCOUNT_ID}:stream/{unique('nope')}/1700000000000"
    expect_error(kvs.describe_stream, "ResourceNotFoundException", 404, StreamARN=missing_arn)


def test_describe_needs_exactly_one_of_name_or_arn(kvs, stream):
    _, arn = stream
    other_name, _ = unique("other"), None
    kvs.create_stream(StreamName=other_name)
    expect_error(kvs.describe_stream, "InvalidArgumentException", 400)
    expect_error(kvs.describe_stream, "InvalidArgumentException", 400,
                 StreamName=other_name, StreamARN=arn)


def test_describe_malformed_arn_is_rejected(kvs):
    # DescribeStream does not list InvalidResourceFormatException in the model
    expect_error(kvs.describe_stream, "InvalidArgumentException", 400, StreamARN="not-an-arn")


def test_list_streams_filter_and_fields(kvs):
    prefix = unique("lst")
    names = sorted(f"{prefix}-{i}" for i in range(3))
    arns = {n: kvs.create_stream(StreamName=n)["StreamARN"] for n in names}
    kvs.create_stream(StreamName=unique("zzz-other"))
    resp = kvs.list_streams(StreamNameCondition={"ComparisonOperator": "BEGINS_WITH",
                                                 "ComparisonValue": prefix})
    got = {s["StreamName"]: s for s in resp["StreamInfoList"]}
    assert sorted(got) == names, f"BEGINS_WITH {prefix!r} returned {sorted(got)}"
    for n, s in got.items():
        assert s["StreamARN"] == arns[n]
        assert s["Status"] == "ACTIVE"
        assert isinstance(s["CreationTime"], dt.datetime)
        assert s["Version"]
    assert not resp.get("NextToken"), f"unexpected NextToken on a complete page: {resp}"


def test_list_streams_max_results_and_next_token(kvs):
    prefix = unique("pg")
    names = {f"{prefix}-{i:02d}" for i in range(5)}
    for n in names:
        kvs.create_stream(StreamName=n)
    cond = {"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": prefix}
    first = kvs.list_streams(MaxResults=2, StreamNameCondition=cond)
    assert len(first["StreamInfoList"]) == 2, f"MaxResults=2 returned {first['StreamInfoList']}"
    token = first.get("NextToken")
    assert token, "a partial page must carry a NextToken"
    assert re.fullmatch(r"[a-zA-Z0-9+/=]*", token) and len(token) <= 1024, \
        f"NextToken {token!r} violates the model pattern [a-zA-Z0-9+/=]* (max 1024)"
    seen = [s["StreamName"] for s in first["StreamInfoList"]]
    while token:
        page = kvs.list_streams(MaxResults=2, StreamNameCondition=cond, NextToken=token)
        assert len(page["StreamInfoList"]) <= 2
        seen += [s["StreamName"] for s in page["StreamInfoList"]]
        token = page.get("NextToken")
        assert len(seen) <= 10, f"paging does not terminate: {seen}"
    assert sorted(seen) == sorted(names), f"manual paging returned {seen}, want {sorted(names)}"


def test_list_streams_bad_next_token(kvs):
    # violates the model's NextToken pattern [a-zA-Z0-9+/=]*
    expect_error(kvs.list_streams, "InvalidArgumentException", 400, NextToken="%%not a token%%")


def test_list_streams_paginator(kvs):
    prefix = unique("pgn")
    names = {f"{prefix}-{i:02d}" for i in range(7)}
    for n in names:
        kvs.create_stream(StreamName=n)
    pages = list(kvs.get_paginator("list_streams").paginate(
        StreamNameCondition={"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": prefix},
        PaginationConfig={"PageSize": 2}))
    seen = [s["StreamName"] for p in pages for s in p["StreamInfoList"]]
    assert len(pages) >= 4, f"7 streams with PageSize=2 gave {len(pages)} pages"
    assert sorted(seen) == sorted(names), f"paginator returned {seen}"
    # build_full_result drives the same tokens
    full = kvs.get_paginator("list_streams").paginate(
        StreamNameCondition={"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": prefix},
        PaginationConfig={"PageSize": 3}).build_full_result()
    assert sorted(s["StreamName"] for s in full["StreamInfoList"]) == sorted(names)


def test_list_streams_without_filter_includes_new_stream(kvs, stream):
    name, _ = stream
    names = [s["StreamName"] for p in kvs.get_paginator("list_streams").paginate()
             for s in p["StreamInfoList"]]
    assert name in names
    assert len(names) == len(set(names)), "ListStreams returned duplicates"


def test_update_stream_changes_fields_and_version(kvs, stream):
    name, arn = stream
    v1 = describe(kvs, StreamName=name)["Version"]
    kvs.update_stream(StreamName=name, CurrentVersion=v1, MediaType="video/h265",
                      DeviceName="dev-2")
    info = describe(kvs, StreamName=name)
    assert info["MediaType"] == "video/h265" and info["DeviceName"] == "dev-2", info
    assert info["Version"] != v1, "Version must change on UpdateStream"
    # by ARN with the new version
    kvs.update_stream(StreamARN=arn, CurrentVersion=info["Version"], MediaType="video/h264")
    assert describe(kvs, StreamARN=arn)["MediaType"] == "video/h264"


def test_update_stream_stale_version(kvs, stream):
    name, _ = stream
    v1 = describe(kvs, StreamName=name)["Version"]
    kvs.update_stream(StreamName=name, CurrentVersion=v1, MediaType="video/h265")
    expect_error(kvs.update_stream, "VersionMismatchException", 400, StreamName=name,
                 CurrentVersion=v1, MediaType="video/h264")
    assert describe(kvs, StreamName=name)["MediaType"] == "video/h265"


def test_update_stream_needs_name_or_arn(kvs):
    expect_error(kvs.update_stream, "InvalidArgumentException", 400, CurrentVersion="abc",
                 MediaType="video/h264")


def test_update_stream_missing(kvs):
    expect_error(kvs.update_stream, "ResourceNotFoundException", 404,
                 StreamName=unique("missing"), CurrentVersion="abc", MediaType="video/h264")


def test_update_data_retention(kvs, stream):
    name, arn = stream
    info = describe(kvs, StreamName=name)
    assert info["DataRetentionInHours"] == 0
    kvs.update_data_retention(StreamName=name, CurrentVersion=info["Version"],
                              Operation="INCREASE_DATA_RETENTION", DataRetentionChangeInHours=48)
    info2 = describe(kvs, StreamName=name)
    assert info2["DataRetentionInHours"] == 48, info2
    assert info2["Version"] != info["Version"], "Version must change on UpdateDataRetention"
    kvs.update_data_retention(StreamARN=arn, CurrentVersion=info2["Version"],
                              Operation="DECREASE_DATA_RETENTION", DataRetentionChangeInHours=12)
    info3 = describe(kvs, StreamName=name)
    assert info3["DataRetentionInHours"] == 36, info3
    assert info3["Version"] not in (info["Version"], info2["Version"])
    # stale version
    expect_error(kvs.update_data_retention, "VersionMismatchException", 400, StreamName=name,
                 CurrentVersion=info2["Version"], Operation="INCREASE_DATA_RETENTION",
                 DataRetentionChangeInHours=1)
    assert describe(kvs, StreamName=name)["DataRetentionInHours"] == 36


def test_update_data_retention_invalid(kvs, stream):
    name, _ = stream
    v = describe(kvs, StreamName=name)["Version"]
    # below zero and above the 87600 h maximum (kvs-api.md §15.1)
    expect_error(kvs.update_data_retention, "InvalidArgumentException", 400, StreamName=name,
                 CurrentVersion=v, Operation="DECREASE_DATA_RETENTION",
                 DataRetentionChangeInHours=5)
    expect_error(kvs.update_data_retention, "InvalidArgumentException", 400, StreamName=name,
                 CurrentVersion=v, Operation="INCREASE_DATA_RETENTION",
                 DataRetentionChangeInHours=87601)
    expect_error(kvs.update_data_retention, "ResourceNotFoundException", 404,
                 StreamName=unique("missing"), CurrentVersion=v,
                 Operation="INCREASE_DATA_RETENTION", DataRetentionChangeInHours=1)


def _gone(kvs, name):
    try:
        kvs.describe_stream(StreamName=name)
        return False
    except kvs.exceptions.ResourceNotFoundException:
        return True


def test_delete_stream(kvs, stream):
    name, arn = stream
    kvs.delete_stream(StreamARN=arn)
    assert wait_until(lambda: _gone(kvs, name)), "stream still describable after DeleteStream"
    listed = [s["StreamName"] for s in kvs.list_streams(StreamNameCondition={
        "ComparisonOperator": "BEGINS_WITH", "ComparisonValue": name})["StreamInfoList"]]
    assert name not in listed, f"deleted stream still listed: {listed}"
    expect_error(kvs.delete_stream, "ResourceNotFoundException", 404, StreamARN=arn)
    # the name can be reused; the new stream has a new ARN
    arn2 = kvs.create_stream(StreamName=name)["StreamARN"]
    assert re.match(stream_arn_regex(name), arn2)
    assert arn2 != arn, "a re-created stream must get a new ARN (creation time differs)"
    assert describe(kvs, StreamName=name)["StreamARN"] == arn2


def test_delete_stream_with_version(kvs, stream):
    name, arn = stream
    v1 = describe(kvs, StreamName=name)["Version"]
    kvs.update_stream(StreamName=name, CurrentVersion=v1, MediaType="video/h265")
    expect_error(kvs.delete_stream, "VersionMismatchException", 400, StreamARN=arn,
                 CurrentVersion=v1)
    assert describe(kvs, StreamName=name)["StreamARN"] == arn, "stale delete must not delete"
    v2 = describe(kvs, StreamName=name)["Version"]
    kvs.delete_stream(StreamARN=arn, CurrentVersion=v2)
    assert wait_until(lambda: _gone(kvs, name))


def test_delete_stream_bad_arn(kvs):
    # DeleteStream does not list InvalidResourceFormatException in the model
    expect_error(kvs.delete_stream, "InvalidArgumentException", 400, StreamARN="garbage")


def test_get_data_endpoint_every_api(kvs, server, stream):
    name, arn = stream
    for api in API_NAMES:
        ep = kvs.get_data_endpoint(StreamName=name, APIName=api)["DataEndpoint"]
        assert ep == server.endpoint, f"GetDataEndpoint({api}) = {ep!r}, want {server.endpoint!r}"
    ep = kvs.get_data_endpoint(StreamARN=arn, APIName="GET_MEDIA")["DataEndpoint"]
    assert ep == server.endpoint


def test_get_data_endpoint_errors(kvs, stream):
    name, _ = stream
    expect_error(kvs.get_data_endpoint, "ResourceNotFoundException", 404,
                 StreamName=unique("missing"), APIName="PUT_MEDIA")
    expect_error(kvs.get_data_endpoint, "InvalidArgumentException", 400, APIName="PUT_MEDIA")


def test_get_data_endpoint_is_usable_by_data_plane_client(kvs, server, stream):
    """A data-plane client built from the returned endpoint reaches the same server."""
    import boto3

    from e2e_support import ROOT_ACCESS_KEY, ROOT_SECRET_KEY, client_config
    name, _ = stream
    ep = kvs.get_data_endpoint(StreamName=name, APIName="LIST_FRAGMENTS")["DataEndpoint"]
    am = boto3.session.Session().client(
        "kinesis-video-archived-media", endpoint_url=ep, region_name=REGION,
        aws_access_key_id=ROOT_ACCESS_KEY, aws_secret_access_key=ROOT_SECRET_KEY,
        config=client_config())
    # Whatever the data plane answers, it must be a well-formed AWS JSON response or error.
    try:
        am.list_fragments(StreamName=name)
    except am.exceptions.ClientError as e:
        assert e.response["Error"]["Code"], f"untyped error from data endpoint: {e.response}"
