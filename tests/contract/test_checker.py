"""The two parsing disciplines can fail: answers that break a type are rejected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.contract import sdk_models as sdk
from tests.contract.checker import ALTERS, COERCES, MISSING, THROWS, check, js_parse_float
from tests.contract.sdk_models import JAVA, JS

CORR = "5d0c7e2a-3f41-4b8e-9c55-0a1b2c3d4e5f"
ID = "8c78d4e1-c85a-424b-8334-5ff36e07372f"


def ok(data: object) -> dict:
    return {"status": {"code": 200, "message": "Successful", "corrId": CORR}, "data": data}


def kinds(problems: list) -> list[tuple[str, str]]:
    return [(p.path, p.kind) for p in problems]


def test_a_well_typed_answer_passes_both() -> None:
    body = ok({"id": ID})
    assert check(JAVA, "CreateCallbackResponse200", body) == []
    assert check(JS, "CreateCallbackResponse200", body) == []


def test_corr_id_must_be_a_uuid_for_java_only() -> None:
    body = {"status": {"code": 200, "message": "Successful", "corrId": "5d0c7e2a3f41"}}
    assert kinds(check(JAVA, "CreateCallbackResponse200", body)) == [("$.status.corrId", THROWS)]
    assert check(JS, "CreateCallbackResponse200", body) == []


def test_proposed_slots_as_arrays_throw_in_gson_and_join_in_js() -> None:
    body = {
        "status": {"code": 429, "message": "full", "corrId": CORR},
        "data": {"slots": {"2026-12-02": ["2026-12-02T10:00:00.000Z", "2026-12-02T10:30:00.000Z"]}},
    }
    assert kinds(check(JAVA, "CreateCallbackResponse429", body)) == [
        ("$.data.slots['2026-12-02']", THROWS)
    ]
    [p] = check(JS, "CreateCallbackResponse429", body)
    assert p.kind == ALTERS and "2026-12-02T10:00:00.000Z,2026-12-02T10:30:00.000Z" in p.detail
    fine = {**body, "data": {"slots": {"2026-12-02T10:00:00.000Z": "3"}}}
    assert check(JAVA, "CreateCallbackResponse429", fine) == []
    assert check(JS, "CreateCallbackResponse429", fine) == []


def test_a_zero_padded_access_code_loses_its_zero_in_both() -> None:
    data = {"id": ID, "toPhoneNumber": "+14155550100", "accessCode": "047334"}
    assert kinds(check(JAVA, "CallInRequestsResponse200", ok(data))) == [
        ("$.data.accessCode", ALTERS)
    ]
    [p] = check(JS, "CallInRequestsResponse200", ok(data))
    assert p.kind == ALTERS and "47334" in p.detail
    assert kinds(check(JAVA, "CallInRequestsResponse200", ok({**data, "accessCode": "47334"}))) == [
        ("$.data.accessCode", COERCES)
    ]
    assert check(JAVA, "CallInRequestsResponse200", ok({**data, "accessCode": 47334})) == []
    assert check(JS, "CallInRequestsResponse200", ok({**data, "accessCode": 47334})) == []


def test_a_missing_required_field_and_a_string_for_a_number() -> None:
    item = {"virtualQueue": "sales", "estimatedWaitTime": 12, "message": "ok"}
    assert kinds(check(JAVA, "EstimatedWaitTimeResponse200", ok([item]))) == [
        ("$.data[0].resultCode", MISSING)
    ]
    assert check(JS, "EstimatedWaitTimeResponse200", ok([item])) == []
    bad = {**item, "resultCode": 0, "estimatedWaitTime": "soon"}
    assert kinds(check(JAVA, "EstimatedWaitTimeResponse200", ok([bad]))) == [
        ("$.data[0].estimatedWaitTime", THROWS)
    ]
    assert kinds(check(JS, "EstimatedWaitTimeResponse200", ok([bad]))) == [
        ("$.data[0].estimatedWaitTime", ALTERS)
    ]
    assert kinds(check(JAVA, "EstimatedWaitTimeResponse200", ok({"sales": item}))) == [
        ("$.data", THROWS)
    ]


@pytest.mark.parametrize(
    ("value", "java", "js"),
    [
        ("2026-11-25T14:30:00.000Z", None, None),
        ("2026-11-25T14:30:00Z", None, None),
        ("2026-11-25T09:30:00-05:00", None, None),
        ("2026-11-25T14:30:00+0000", None, None),  # the SDK's JSON adapter rewrites +0000
        ("2026-11-25T09:30:00-0500", THROWS, None),
        ("2026-11-25T14:30:00", THROWS, ALTERS),
        ("2026-11-25", THROWS, ALTERS),
        ("soon", THROWS, ALTERS),
        (1764081000, THROWS, ALTERS),
        (["2026-11-25T14:30:00Z"], THROWS, ALTERS),
    ],
)
def test_date_times(value: object, java: str | None, js: str | None) -> None:
    body = ok({"id": ID, "desiredTime": value})
    assert [p.kind for p in check(JAVA, "GetCallbackResponse200", body)] == ([java] if java else [])
    assert [p.kind for p in check(JS, "GetCallbackResponse200", body)] == ([js] if js else [])


@pytest.mark.parametrize(
    ("value", "java", "js"),
    [
        (True, None, None),
        ("true", COERCES, ALTERS),
        ("false", COERCES, ALTERS),  # Boolean("false") is true in JS
        (1, THROWS, ALTERS),
    ],
)
def test_booleans(value: object, java: str | None, js: str | None) -> None:
    body = ok({"ewt": 5, "offerImmediateCallback": value, "offerScheduledCallback": True})
    assert [p.kind for p in check(JAVA, "QueueStatusResponse200", body)] == ([java] if java else [])
    assert [p.kind for p in check(JS, "QueueStatusResponse200", body)] == ([js] if js else [])


def test_strings_numbers_models_and_lists() -> None:
    assert [p.kind for p in check(JAVA, "GetCallbackResponse200", ok({"phoneNumber": 1}))] == [
        COERCES
    ]
    assert [p.kind for p in check(JAVA, "GetCallbackResponse200", ok({"phoneNumber": {}}))] == [
        THROWS
    ]
    assert [p.kind for p in check(JS, "GetCallbackResponse200", ok({"phoneNumber": ["a"]}))] == [
        ALTERS
    ]
    assert [p.kind for p in check(JAVA, "GetCallbackResponse200", ok("x"))] == [THROWS]
    assert [p.kind for p in check(JS, "GetCallbackResponse200", ok("x"))] == [ALTERS]
    slots = ok({"slots": {"utcTime": "2026-11-25T14:30:00Z"}, "durationMin": 30})
    assert [p.kind for p in check(JAVA, "AvailabilitiesResponse200", slots)] == [THROWS]
    assert [p.kind for p in check(JS, "AvailabilitiesResponse200", slots)] == [THROWS]
    huge = ok({"openFor": 2**60})
    assert check(JAVA, "OpenForResponse200", huge) == []
    assert [p.kind for p in check(JS, "OpenForResponse200", huge)] == [ALTERS]


def test_js_parse_float_is_prefix_parsing() -> None:
    assert js_parse_float("047334") == 47334
    assert js_parse_float(" 12abc") == 12
    assert js_parse_float("1.5e3x") == 1500
    assert js_parse_float("abc") != js_parse_float("abc")  # NaN


def test_wire_forms_of_dates_and_bodies() -> None:
    t = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)
    assert sdk.java_datetime(t) == "2026-11-25T14:30:00Z"
    assert sdk.java_datetime(t.replace(microsecond=120000)) == "2026-11-25T14:30:00.12Z"
    est = timezone(timedelta(hours=-5))
    assert sdk.java_datetime(t.astimezone(est)) == "2026-11-25T09:30:00-05:00"
    assert sdk.js_datetime(t.astimezone(est)) == "2026-11-25T14:30:00.000Z"
    assert sdk.java_body("CreateCallbackParms", serviceName="s", phoneNumber="p") == {
        "serviceName": "s",
        "phoneNumber": "p",
        "cbOfferType": sdk.CB_OFFER_TYPE_DEFAULT,
        "language": "en-US",
    }
    assert sdk.js_body("CreateCallbackParms", serviceName="s", phoneNumber="p") == {
        "serviceName": "s",
        "phoneNumber": "p",
    }
    assert sdk.java_query(True) == "true" and sdk.js_query(7) == "7"
