"""Tags: TagStream/UntagStream/ListTagsForStream (map input) and TagResource/UntagResource/
ListTagsForResource (list-of-Tag input, map output) on streams and channels (kvs-api.md §2.1)."""

from __future__ import annotations

from e2e_support import ACCOUNT_ID, REGION, expect_error, unique


def test_create_stream_tags_are_listed(kvs, name):
    arn = kvs.create_stream(StreamName=name, Tags={"a": "1", "b": ""})["StreamARN"]
    assert kvs.list_tags_for_stream(StreamName=name)["Tags"] == {"a": "1", "b": ""}
    assert kvs.list_tags_for_stream(StreamARN=arn)["Tags"] == {"a": "1", "b": ""}


def test_stream_without_tags_lists_empty(kvs, stream):
    name, _ = stream
    resp = kvs.list_tags_for_stream(StreamName=name)
    assert resp.get("Tags", {}) == {}, resp
    assert not resp.get("NextToken")


def test_tag_untag_stream(kvs, stream):
    name, arn = stream
    kvs.tag_stream(StreamName=name, Tags={"team": "video", "env": "dev"})
    kvs.tag_stream(StreamARN=arn, Tags={"env": "prod", "owner": "me"})  # overwrite + add
    tags = kvs.list_tags_for_stream(StreamName=name)["Tags"]
    assert tags == {"team": "video", "env": "prod", "owner": "me"}, tags
    kvs.untag_stream(StreamARN=arn, TagKeyList=["team", "does-not-exist"])
    kvs.untag_stream(StreamName=name, TagKeyList=["owner"])
    tags = kvs.list_tags_for_stream(StreamARN=arn)["Tags"]
    assert tags == {"env": "prod"}, tags


def test_stream_tag_limit(kvs, stream):
    name, _ = stream
    kvs.tag_stream(StreamName=name, Tags={f"k{i}": "v" for i in range(45)})
    # rewriting existing keys does not add tags
    kvs.tag_stream(StreamName=name, Tags={f"k{i}": "w" for i in range(45)})
    expect_error(kvs.tag_stream, "TagsPerResourceExceededLimitException", 400, StreamName=name,
                 Tags={f"n{i}": "v" for i in range(6)})
    tags = kvs.list_tags_for_stream(StreamName=name)["Tags"]
    assert len(tags) == 45 and all(v == "w" for v in tags.values()), \
        f"a rejected TagStream must not change the tags: {len(tags)} tags"
    kvs.tag_stream(StreamName=name, Tags={f"n{i}": "v" for i in range(5)})  # exactly 50
    assert len(kvs.list_tags_for_stream(StreamName=name)["Tags"]) == 50


def test_stream_tag_errors(kvs):
    missing = unique("missing")
    expect_error(kvs.tag_stream, "ResourceNotFoundException", 404, StreamName=missing,
                 Tags={"a": "b"})
    expect_error(kvs.untag_stream, "ResourceNotFoundException", 404, StreamName=missing,
                 TagKeyList=["a"])
    expect_error(kvs.list_tags_for_stream, "ResourceNotFoundException", 404, StreamName=missing)
    for fn, kw in ((kvs.tag_stream, {"Tags": {"a": "b"}}),
                   (kvs.untag_stream, {"TagKeyList": ["a"]}),
                   (kvs.list_tags_for_stream, {})):
        expect_error(fn, "InvalidResourceFormatException", 400, StreamARN="not-an-arn", **kw)
    expect_error(kvs.list_tags_for_stream, "InvalidArgumentException", 400)


def test_tag_resource_on_channel(kvs, channel):
    _, arn = channel
    kvs.tag_resource(ResourceARN=arn, Tags=[{"Key": "x", "Value": "1"}, {"Key": "y", "Value": "2"}])
    resp = kvs.list_tags_for_resource(ResourceARN=arn)
    assert resp["Tags"] == {"x": "1", "y": "2"}, f"ListTagsForResource must return a map: {resp}"
    kvs.tag_resource(ResourceARN=arn, Tags=[{"Key": "x", "Value": "3"}])
    kvs.untag_resource(ResourceARN=arn, TagKeyList=["y"])
    assert kvs.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"x": "3"}


def test_tag_resource_on_stream_arn(kvs, stream):
    name, arn = stream
    kvs.tag_resource(ResourceARN=arn, Tags=[{"Key": "via", "Value": "resource"}])
    assert kvs.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"via": "resource"}
    # one tag set per stream, whichever API set it
    kvs.tag_stream(StreamName=name, Tags={"via2": "stream"})
    assert kvs.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"via": "resource",
                                                                   "via2": "stream"}
    assert kvs.list_tags_for_stream(StreamName=name)["Tags"] == {"via": "resource",
                                                                 "via2": "stream"}
    kvs.untag_resource(ResourceARN=arn, TagKeyList=["via"])
    assert kvs.list_tags_for_stream(StreamARN=arn)["Tags"] == {"via2": "stream"}


def test_tag_resource_limit_and_errors(kvs, channel):
    _, arn = channel
    kvs.tag_resource(ResourceARN=arn, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
    expect_error(kvs.tag_resource, "TagsPerResourceExceededLimitException", 400, ResourceARN=arn,
                 Tags=[{"Key": "one-more", "Value": "v"}])
    assert len(kvs.list_tags_for_resource(ResourceARN=arn)["Tags"]) == 50
    missing = f"arn:aws:kinesisvideo:{REGION}:{ACCOUNT_ID}:channel/{unique('nope')}/1700000000000"
    expect_error(kvs.tag_resource, "ResourceNotFoundException", 404, ResourceARN=missing,
                 Tags=[{"Key": "a", "Value": "b"}])
    expect_error(kvs.untag_resource, "ResourceNotFoundException", 404, ResourceARN=missing,
                 TagKeyList=["a"])
    expect_error(kvs.list_tags_for_resource, "ResourceNotFoundException", 404,
                 ResourceARN=missing)
    # the model lists no InvalidResourceFormatException for the *Resource operations
    expect_error(kvs.list_tags_for_resource, "InvalidArgumentException", 400,
                 ResourceARN="not-an-arn")


def test_tags_removed_with_resource(kvs, name):
    """A re-created stream of the same name starts without the old stream's tags."""
    arn = kvs.create_stream(StreamName=name, Tags={"old": "yes"})["StreamARN"]
    kvs.delete_stream(StreamARN=arn)
    kvs.create_stream(StreamName=name)
    assert kvs.list_tags_for_stream(StreamName=name).get("Tags", {}) == {}
