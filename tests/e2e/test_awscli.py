"""The unmodified AWS CLI (`aws kinesisvideo ... --endpoint-url`) through every control-plane
operation the server implements."""

from __future__ import annotations

import re

from e2e_support import channel_arn_regex, stream_arn_regex, unique


def test_cli_stream_lifecycle(cli, server):
    name = unique("cli")
    arn = cli.json("create-stream", "--stream-name", name, "--media-type", "video/h264",
                   "--data-retention-in-hours", "2", "--tags", "k1=v1,k2=v2")["StreamARN"]
    assert re.match(stream_arn_regex(name), arn), arn

    info = cli.json("describe-stream", "--stream-name", name)["StreamInfo"]
    assert info["StreamARN"] == arn and info["Status"] == "ACTIVE"
    assert info["MediaType"] == "video/h264" and info["DataRetentionInHours"] == 2
    assert info["CreationTime"], info
    assert cli.json("describe-stream", "--stream-arn", arn)["StreamInfo"]["StreamName"] == name

    listed = cli.json("list-streams", "--stream-name-condition",
                      f"ComparisonOperator=BEGINS_WITH,ComparisonValue={name}")
    assert [s["StreamName"] for s in listed["StreamInfoList"]] == [name], listed

    cli.json("update-stream", "--stream-name", name, "--current-version", info["Version"],
             "--media-type", "video/h265", "--device-name", "cli-dev")
    info2 = cli.json("describe-stream", "--stream-name", name)["StreamInfo"]
    assert info2["MediaType"] == "video/h265" and info2["DeviceName"] == "cli-dev"
    assert info2["Version"] != info["Version"]

    cli.json("update-data-retention", "--stream-name", name, "--current-version",
             info2["Version"], "--operation", "INCREASE_DATA_RETENTION",
             "--data-retention-change-in-hours", "10")
    info3 = cli.json("describe-stream", "--stream-arn", arn)["StreamInfo"]
    assert info3["DataRetentionInHours"] == 12, info3
    cli.json("update-data-retention", "--stream-arn", arn, "--current-version",
             info3["Version"], "--operation", "DECREASE_DATA_RETENTION",
             "--data-retention-change-in-hours", "2")
    info4 = cli.json("describe-stream", "--stream-arn", arn)["StreamInfo"]
    assert info4["DataRetentionInHours"] == 10, info4

    for api in ("PUT_MEDIA", "GET_MEDIA", "GET_HLS_STREAMING_SESSION_URL", "GET_CLIP"):
        ep = cli.json("get-data-endpoint", "--stream-name", name, "--api-name", api)
        assert ep["DataEndpoint"] == server.endpoint, (api, ep)

    cli.json("tag-stream", "--stream-arn", arn, "--tags", "k3=v3")
    tags = cli.json("list-tags-for-stream", "--stream-name", name)["Tags"]
    assert tags == {"k1": "v1", "k2": "v2", "k3": "v3"}, tags
    cli.json("untag-stream", "--stream-name", name, "--tag-key-list", "k1", "k3")
    assert cli.json("list-tags-for-stream", "--stream-arn", arn)["Tags"] == {"k2": "v2"}

    cli.json("tag-resource", "--resource-arn", arn, "--tags", "Key=r,Value=1")
    assert cli.json("list-tags-for-resource", "--resource-arn", arn)["Tags"] == {"k2": "v2",
                                                                                 "r": "1"}
    cli.json("untag-resource", "--resource-arn", arn, "--tag-key-list", "r")

    cli.run("delete-stream", "--stream-arn", arn, "--current-version", info4["Version"])
    res = cli.run("describe-stream", "--stream-name", name, check=False)
    assert res.returncode != 0, "describe-stream after delete-stream must fail"
    assert "ResourceNotFoundException" in res.stderr, res.stderr


def test_cli_list_streams_auto_pagination(cli):
    prefix = unique("clipg")
    names = [f"{prefix}-{i}" for i in range(5)]
    for n in names:
        cli.json("create-stream", "--stream-name", n)
    out = cli.json("list-streams", "--page-size", "2", "--stream-name-condition",
                   f"ComparisonOperator=BEGINS_WITH,ComparisonValue={prefix}")
    got = [s["StreamName"] for s in out["StreamInfoList"]]
    assert sorted(got) == names, f"CLI auto-pagination with --page-size 2 returned {got}"
    first = cli.json("list-streams", "--max-items", "2", "--stream-name-condition",
                     f"ComparisonOperator=BEGINS_WITH,ComparisonValue={prefix}")
    assert len(first["StreamInfoList"]) == 2 and first.get("NextToken"), first
    rest = cli.json("list-streams", "--starting-token", first["NextToken"],
                    "--stream-name-condition",
                    f"ComparisonOperator=BEGINS_WITH,ComparisonValue={prefix}")
    got = [s["StreamName"] for s in first["StreamInfoList"] + rest["StreamInfoList"]]
    assert sorted(got) == names, got


def test_cli_channel_lifecycle(cli, server):
    name = unique("clich")
    arn = cli.json("create-signaling-channel", "--channel-name", name,
                   "--single-master-configuration", "MessageTtlSeconds=45",
                   "--tags", "Key=a,Value=b")["ChannelARN"]
    assert re.match(channel_arn_regex(name), arn), arn
    info = cli.json("describe-signaling-channel", "--channel-name", name)["ChannelInfo"]
    assert info["ChannelARN"] == arn and info["ChannelStatus"] == "ACTIVE"
    assert info["SingleMasterConfiguration"]["MessageTtlSeconds"] == 45
    assert cli.json("describe-signaling-channel", "--channel-arn", arn)["ChannelInfo"] == info

    listed = cli.json("list-signaling-channels", "--channel-name-condition",
                      f"ComparisonOperator=BEGINS_WITH,ComparisonValue={name}")
    assert [c["ChannelName"] for c in listed["ChannelInfoList"]] == [name], listed

    cli.json("update-signaling-channel", "--channel-arn", arn, "--current-version",
             info["Version"], "--single-master-configuration", "MessageTtlSeconds=100")
    info2 = cli.json("describe-signaling-channel", "--channel-arn", arn)["ChannelInfo"]
    assert info2["SingleMasterConfiguration"]["MessageTtlSeconds"] == 100
    assert info2["Version"] != info["Version"]

    eps = cli.json("get-signaling-channel-endpoint", "--channel-arn", arn,
                   "--single-master-channel-endpoint-configuration",
                   "Protocols=HTTPS,WSS,Role=VIEWER")["ResourceEndpointList"]
    hostport = server.endpoint.split("://", 1)[1]
    assert eps == [{"Protocol": "HTTPS", "ResourceEndpoint": f"http://{hostport}"},
                   {"Protocol": "WSS", "ResourceEndpoint": f"ws://{hostport}"}], eps

    msc = cli.json("describe-media-storage-configuration", "--channel-arn", arn)
    assert msc["MediaStorageConfiguration"]["Status"] == "DISABLED", msc

    cli.json("tag-resource", "--resource-arn", arn, "--tags", "Key=c,Value=d")
    assert cli.json("list-tags-for-resource", "--resource-arn", arn)["Tags"] == {"a": "b",
                                                                                 "c": "d"}
    cli.json("untag-resource", "--resource-arn", arn, "--tag-key-list", "a")
    assert cli.json("list-tags-for-resource", "--resource-arn", arn)["Tags"] == {"c": "d"}

    cli.run("delete-signaling-channel", "--channel-arn", arn, "--current-version",
            info2["Version"])
    res = cli.run("describe-signaling-channel", "--channel-arn", arn, check=False)
    assert res.returncode != 0 and "ResourceNotFoundException" in res.stderr, res.stderr


def test_cli_errors_are_typed(cli):
    name = unique("clierr")
    cli.json("create-stream", "--stream-name", name)
    dup = cli.run("create-stream", "--stream-name", name, check=False)
    assert dup.returncode != 0 and "ResourceInUseException" in dup.stderr, dup.stderr
    bad = cli.run("create-stream", "--stream-name", "bad name", check=False)
    assert bad.returncode != 0 and "InvalidArgumentException" in bad.stderr, bad.stderr
    unsupported = cli.run("describe-edge-configuration", "--stream-name", name, check=False)
    assert unsupported.returncode != 0 and "UnsupportedOperationException" in unsupported.stderr, \
        unsupported.stderr


def test_cli_wrong_secret(cli, server, tmp_path):
    from e2e_support import AwsCli
    bad = AwsCli(cli.command, server.endpoint, tmp_path, secret_key="wrong-secret")
    res = bad.run("list-streams", check=False)
    assert res.returncode != 0 and "InvalidSignatureException" in res.stderr, res.stderr
