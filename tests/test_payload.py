"""The context payload and the request details: checked, cleaned and capped before any write."""

import json

import pytest
from django.test import RequestFactory

from audit_log.payload import MAX_PAYLOAD_BYTES, TRUNCATED_KEY, build_payload
from audit_log.request_info import MAX_QUERY_LENGTH, MAX_QUERY_PARAMETERS, request_details
from audit_log.serialization import CYCLE_MARKER, DEPTH_MARKER, MAX_DEPTH, clean_text, jsonable
from tests.testapp.models import AuditLogContext


def test_clean_text_replaces_nul_and_lone_surrogates():
    assert clean_text("a\x00b\ud800c\udfffd") == "a\ufffdb\ufffdc\ufffdd"
    assert clean_text("plain æøå 🦆") == "plain æøå 🦆"


def test_jsonable_cleans_keys_and_nested_strings():
    assert jsonable({"k\x00": ["v\x00", {"n": b"b\x00"}]}) == {"k\ufffd": ["v\ufffd", {"n": "b\ufffd"}]}


def test_jsonable_marks_cycles_and_depth_when_lenient_and_refuses_them_when_strict():
    cyclic = {"a": 1}
    cyclic["self"] = cyclic
    assert jsonable(cyclic) == {"a": 1, "self": CYCLE_MARKER}
    with pytest.raises(ValueError, match="refers to itself"):
        jsonable(cyclic, strict=True)
    deep = current = []
    for _ in range(MAX_DEPTH + 5):
        current.append([])
        current = current[0]
    assert DEPTH_MARKER in json.dumps(jsonable(deep))
    with pytest.raises(ValueError, match=f"more than {MAX_DEPTH} levels"):
        jsonable(deep, strict=True)


def test_jsonable_allows_the_same_object_twice_when_it_is_no_cycle():
    shared = {"x": 1}
    assert jsonable({"a": shared, "b": [shared, shared]}, strict=True) == {"a": {"x": 1}, "b": [{"x": 1}, {"x": 1}]}


def test_payload_holds_every_column_of_the_context_model():
    context = AuditLogContext(context_type="job", context={"n": 1}, tenant="acme")
    payload = json.loads(build_payload(context, strict=True))
    assert payload == {
        "context_type": "job",
        "context": {"n": 1},
        "performed_by_id": None,
        "performed_by_label": "",
        "context_id": str(context.context_id),
        "tenant": "acme",
    }


def test_lenient_payload_cuts_values_to_max_length():
    payload = json.loads(build_payload(AuditLogContext(context_type="x" * 100, tenant="t" * 100), strict=False))
    assert (payload["context_type"], payload["tenant"]) == ("x" * 64, "t" * 50)


def test_lenient_payload_over_the_limit_shortens_long_strings_and_says_so():
    context = AuditLogContext(context_type="http-request", context={"path": "/p", "body": "b" * MAX_PAYLOAD_BYTES})
    text = build_payload(context, strict=False)
    assert len(text.encode()) <= MAX_PAYLOAD_BYTES
    payload = json.loads(text)
    assert payload["context"]["path"] == "/p"
    assert payload["context"]["body"].startswith("bbb")
    assert payload["context"]["body"].endswith("…")
    assert payload["context"][TRUNCATED_KEY] is True


def test_lenient_payload_of_many_short_values_over_the_limit_keeps_only_the_marker():
    context = AuditLogContext(context_type="x", context={f"k{i}": "v" for i in range(MAX_PAYLOAD_BYTES)})
    text = build_payload(context, strict=False)
    assert json.loads(text)["context"] == {TRUNCATED_KEY: True}


def request(path="/p/", query="", **extra):
    return RequestFactory().get(path, QUERY_STRING=query, REMOTE_ADDR="10.0.0.1", **extra)


def test_request_details_record_method_path_query_and_address():
    details = request_details(request("/invoices/", "a=1&a=2&b=%C3%A6+x&flag"))
    assert details == {
        "method": "GET",
        "path": "/invoices/",
        "query_params": {"a": ["1", "2"], "b": ["æ x"], "flag": [""]},
        "remote_addr": "10.0.0.1",
    }


def test_request_details_cap_the_total_query_length():
    query = "&".join(f"k{i}=" + "v" * 400 for i in range(MAX_QUERY_PARAMETERS))
    details = request_details(request(query=query))
    recorded = sum(len(key) + sum(len(value) for value in values) for key, values in details["query_params"].items())
    assert recorded <= MAX_QUERY_LENGTH
    assert details["truncated"] == ["query_params"]


def test_request_details_decode_like_querydict():
    assert request_details(request(query="name=%E6"))["query_params"] == {"name": ["\ufffd"]}  # not UTF-8
    assert request_details(request(query="x=\xe6"))["query_params"] == {"x": ["\xe6"]}  # a raw byte, as WSGI gives it


def test_request_details_never_parse_more_than_the_cap():
    details = request_details(request(query="&" * 50 + "a=1&" * 10_000))
    assert len(details["query_params"]["a"]) == MAX_QUERY_PARAMETERS - 50
    assert details["truncated"] == ["query_params"]
