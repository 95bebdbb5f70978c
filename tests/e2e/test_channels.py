"""Signaling-channel control plane through unmodified boto3 (kvs-api.md §2, §13.2)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from e2e_support import ACCOUNT_ID, REGION, channel_arn_regex, expect_error, unique


def describe(kvs, **kw):
    return kvs.describe_signaling_channel(**kw)["ChannelInfo"]


def test_create_and_describe_channel(kvs, name):
    before = dt.datetime.now(dt.timezone.utc)
    arn = kvs.create_signaling_channel(ChannelName=name)["ChannelARN"]
    assert re.match(channel_arn_regex(name), arn), \
        f"ChannelARN {arn!r} is not arn:aws:kinesisvideo:{REGION}:{ACCOUNT_ID}:channel/{name}/<ms>"
    by_name = describe(kvs, ChannelName=name)
    by_arn = describe(kvs, ChannelARN=arn)
    assert by_name == by_arn, f"describe by name {by_name} != by ARN {by_arn}"
    info = by_name
    assert info["ChannelName"] == name and info["ChannelARN"] == arn
    assert info["ChannelType"] == "SINGLE_MASTER", info
    assert info["ChannelStatus"] == "ACTIVE", info
    assert info["SingleMasterConfiguration"]["MessageTtlSeconds"] == 60, \
        f"default MessageTtlSeconds must be 60: {info}"
    assert re.fullmatch(r"[a-zA-Z0-9]{1,64}", info["Version"])
    assert abs((info["CreationTime"] - before).total_seconds()) < 60


def test_create_channel_with_options(kvs, name):
    arn = kvs.create_signaling_channel(
        ChannelName=name, ChannelType="SINGLE_MASTER",
        SingleMasterConfiguration={"MessageTtlSeconds": 30},
        Tags=[{"Key": "env", "Value": "test"}, {"Key": "empty", "Value": ""}])["ChannelARN"]
    info = describe(kvs, ChannelARN=arn)
    assert info["SingleMasterConfiguration"]["MessageTtlSeconds"] == 30
    tags = kvs.list_tags_for_resource(ResourceARN=arn)["Tags"]
    assert tags == {"env": "test", "empty": ""}, tags


def test_create_channel_errors(kvs, channel):
    name, _ = channel
    expect_error(kvs.create_signaling_channel, "ResourceInUseException", 400, ChannelName=name)
    expect_error(kvs.create_signaling_channel, "InvalidArgumentException", 400,
                 ChannelName="bad name!")
    expect_error(kvs.create_signaling_channel, "InvalidArgumentException", 400,
                 ChannelName=unique("ttl"), SingleMasterConfiguration={"MessageTtlSeconds": 121})
    expect_error(kvs.create_signaling_channel, "TagsPerResourceExceededLimitException", 400,
                 ChannelName=unique("tags"),
                 Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])


def test_describe_channel_errors(kvs):
    expect_error(kvs.describe_signaling_channel, "ResourceNotFoundException", 404,
                 ChannelName=unique("missing"))
    expect_error(kvs.describe_signaling_channel, "ResourceNotFoundException", 404,
                 ChannelARN=f"arn:aws:kinesisvideo:{REGION}:{ACCOUNT_ID}:channel/"
                            f"{unique('nope')}/1700000000000")
    expect_error(kvs.describe_signaling_channel, "InvalidArgumentException", 400)


def test_list_signaling_channels_filter_and_paging(kvs):
    prefix = unique("chl")
    names = {f"{prefix}-{i:02d}" for i in range(5)}
    arns = {n: kvs.create_signaling_channel(ChannelName=n)["ChannelARN"] for n in names}
    kvs.create_signaling_channel(ChannelName=unique("zz-other"))
    cond = {"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": prefix}

    resp = kvs.list_signaling_channels(ChannelNameCondition=cond)
    got = {c["ChannelName"]: c for c in resp["ChannelInfoList"]}
    assert set(got) == names, f"BEGINS_WITH {prefix!r} returned {sorted(got)}"
    for n, c in got.items():
        assert c["ChannelARN"] == arns[n]
        assert c["ChannelStatus"] == "ACTIVE" and c["ChannelType"] == "SINGLE_MASTER"

    first = kvs.list_signaling_channels(ChannelNameCondition=cond, MaxResults=2)
    assert len(first["ChannelInfoList"]) == 2 and first.get("NextToken"), first
    assert re.fullmatch(r"[a-zA-Z0-9+/=]*", first["NextToken"])

    pages = list(kvs.get_paginator("list_signaling_channels").paginate(
        ChannelNameCondition=cond, PaginationConfig={"PageSize": 2}))
    seen = [c["ChannelName"] for p in pages for c in p["ChannelInfoList"]]
    assert len(pages) == 3, f"5 channels with PageSize=2 gave {len(pages)} pages"
    assert sorted(seen) == sorted(names), f"paginator returned {seen}"


def test_update_signaling_channel(kvs, channel):
    name, arn = channel
    v1 = describe(kvs, ChannelARN=arn)["Version"]
    kvs.update_signaling_channel(ChannelARN=arn, CurrentVersion=v1,
                                 SingleMasterConfiguration={"MessageTtlSeconds": 90})
    info = describe(kvs, ChannelName=name)
    assert info["SingleMasterConfiguration"]["MessageTtlSeconds"] == 90, info
    assert info["Version"] != v1, "Version must change on UpdateSignalingChannel"
    expect_error(kvs.update_signaling_channel, "VersionMismatchException", 400, ChannelARN=arn,
                 CurrentVersion=v1, SingleMasterConfiguration={"MessageTtlSeconds": 10})
    expect_error(kvs.update_signaling_channel, "InvalidArgumentException", 400, ChannelARN=arn,
                 CurrentVersion=info["Version"],
                 SingleMasterConfiguration={"MessageTtlSeconds": 500})
    assert describe(kvs, ChannelARN=arn)["SingleMasterConfiguration"]["MessageTtlSeconds"] == 90
    expect_error(kvs.update_signaling_channel, "ResourceNotFoundException", 404,
                 ChannelARN=f"arn:aws:kinesisvideo:{REGION}:{ACCOUNT_ID}:channel/"
                            f"{unique('nope')}/1700000000000",
                 CurrentVersion="abc", SingleMasterConfiguration={"MessageTtlSeconds": 10})


def test_delete_signaling_channel(kvs, channel):
    name, arn = channel
    v1 = describe(kvs, ChannelARN=arn)["Version"]
    kvs.update_signaling_channel(ChannelARN=arn, CurrentVersion=v1,
                                 SingleMasterConfiguration={"MessageTtlSeconds": 20})
    expect_error(kvs.delete_signaling_channel, "VersionMismatchException", 400, ChannelARN=arn,
                 CurrentVersion=v1)
    v2 = describe(kvs, ChannelARN=arn)["Version"]
    kvs.delete_signaling_channel(ChannelARN=arn, CurrentVersion=v2)
    expect_error(kvs.describe_signaling_channel, "ResourceNotFoundException", 404,
                 ChannelName=name)
    expect_error(kvs.delete_signaling_channel, "ResourceNotFoundException", 404, ChannelARN=arn)
    listed = kvs.list_signaling_channels(ChannelNameCondition={
        "ComparisonOperator": "BEGINS_WITH", "ComparisonValue": name})["ChannelInfoList"]
    assert not listed, f"deleted channel still listed: {listed}"


def test_delete_signaling_channel_without_version(kvs, channel):
    name, arn = channel
    kvs.delete_signaling_channel(ChannelARN=arn)
    expect_error(kvs.describe_signaling_channel, "ResourceNotFoundException", 404,
                 ChannelARN=arn)


@pytest.mark.parametrize("protocols", [["WSS", "HTTPS"], ["HTTPS", "WSS"], ["WSS"], ["HTTPS"]])
@pytest.mark.parametrize("role", ["MASTER", "VIEWER"])
def test_get_signaling_channel_endpoint(kvs, server, channel, protocols, role):
    _, arn = channel
    resp = kvs.get_signaling_channel_endpoint(
        ChannelARN=arn,
        SingleMasterChannelEndpointConfiguration={"Protocols": protocols, "Role": role})
    items = resp["ResourceEndpointList"]
    assert [i["Protocol"] for i in items] == protocols, \
        f"must return one item per requested protocol in order {protocols}, got {items}"
    hostport = server.endpoint.split("://", 1)[1]
    want = {"WSS": f"ws://{hostport}", "HTTPS": f"http://{hostport}"}
    for i in items:
        assert i["ResourceEndpoint"] == want[i["Protocol"]], \
            f"{i['Protocol']} endpoint {i['ResourceEndpoint']!r}, want {want[i['Protocol']]!r}"


def test_get_signaling_channel_endpoint_errors(kvs, channel):
    _, arn = channel
    expect_error(kvs.get_signaling_channel_endpoint, "InvalidArgumentException", 400,
                 ChannelARN=arn, SingleMasterChannelEndpointConfiguration={
                     "Protocols": ["WEBRTC"], "Role": "MASTER"})
    expect_error(kvs.get_signaling_channel_endpoint, "ResourceNotFoundException", 404,
                 ChannelARN=f"arn:aws:kinesisvideo:{REGION}:{ACCOUNT_ID}:channel/"
                            f"{unique('nope')}/1700000000000",
                 SingleMasterChannelEndpointConfiguration={"Protocols": ["WSS"], "Role": "MASTER"})


def test_describe_media_storage_configuration(kvs, channel):
    name, arn = channel
    for kw in ({"ChannelARN": arn}, {"ChannelName": name}):
        resp = kvs.describe_media_storage_configuration(**kw)
        cfg = resp["MediaStorageConfiguration"]
        assert cfg["Status"] == "DISABLED", f"{kw}: {resp}"
        assert not cfg.get("StreamARN"), f"unexpected StreamARN in {cfg}"
    expect_error(kvs.describe_media_storage_configuration, "ResourceNotFoundException", 404,
                 ChannelName=unique("missing"))
