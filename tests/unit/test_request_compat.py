"""What Genesys' published clients send on create and Click-To-Call-In: ``cbOfferType``'s
default sentence, nested ``userData`` within its bounds (or as the Java SDK's JSON string),
integers a JavaScript client holds exactly, push targets."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from dialback.callbacks.schemas import (
    USER_DATA_MAX_BYTES,
    USER_DATA_MAX_DEPTH,
    CreateCallback,
)
from dialback.callins.schemas import CreateCallIn
from dialback.kit.errors import BadRequest

# Both SDKs (CreateCallbackParms) default cbOfferType to this and send it unless told otherwise.
SDK_DEFAULT_OFFER_TYPE = (
    "ASAP if the request does not include the desiredTime parameter and SCHEDULED "
    "if the request includes the desiredTime parameter."
)
BASE = {"serviceName": "sales", "phoneNumber": "+14155550123"}
LATER = "2030-01-01T12:00:00.000Z"


def create(**body: Any) -> CreateCallback:
    return CreateCallback.model_validate({**BASE, **body})


def user_data(value: Any, model: str = "callback") -> dict[str, Any]:
    if model == "callback":
        return create(userData=value).userData
    return CreateCallIn.model_validate({"groupName": "g", "userData": value}).userData


@pytest.mark.parametrize(
    ("sent", "desired", "stored"),
    [
        (SDK_DEFAULT_OFFER_TYPE, None, "ASAP"),
        (SDK_DEFAULT_OFFER_TYPE, LATER, "SCHEDULED"),
        (None, None, "ASAP"),
        (None, LATER, "SCHEDULED"),
        ("NOW", None, "ASAP"),
        ("", LATER, "SCHEDULED"),
        ("x" * 10_000, None, "ASAP"),
        ("asap", LATER, "ASAP"),
        (" Scheduled ", None, "SCHEDULED"),
        ("combined_scheduled_and_asap", LATER, "COMBINED_SCHEDULED_AND_ASAP"),
    ],
)
def test_cb_offer_type_is_any_string_known_types_normalised(
    sent: str | None, desired: str | None, stored: str
) -> None:
    body: dict[str, Any] = {"cbOfferType": sent}
    if desired:
        body["desiredTime"] = desired
    assert create(**body).stored_offer_type() == stored


def test_cb_offer_type_must_still_be_a_string() -> None:
    with pytest.raises(ValidationError, match="cbOfferType"):
        create(cbOfferType=5)


@pytest.mark.parametrize("model", ["callback", "callin"])
def test_nested_user_data_is_kept_and_top_level_non_identifiers_ignored(model: str) -> None:
    sent = {
        "order": {"id": "A-1", "lines": [{"sku": "X", "qty": 2, "price": 9.99}], "gift": False},
        "tags": ["vip", None, 3],
        "not-an-identifier": {"dropped": True},
        "max": 2**53 - 1,
        "min": -(2**53 - 1),
    }
    kept = user_data(sent, model)
    assert kept == {k: v for k, v in sent.items() if k != "not-an-identifier"}
    # Keys below the top level are data, not variable names: kept as they are.
    assert user_data({"a": {"not-an-identifier": 1, "": 2}}, model) == {
        "a": {"not-an-identifier": 1, "": 2}
    }


@pytest.mark.parametrize("model", ["callback", "callin"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"big": 12345678901234567890}, "userData.big: integer beyond +/-(2^53-1)"),
        ({"a": {"b": [1, 2**53]}}, "userData.a.b.1: integer beyond +/-(2^53-1)"),
        ({"a": [{"n": -(2**53)}]}, "userData.a.0.n: integer beyond +/-(2^53-1)"),
        ({"a": {"b": float("nan")}}, "userData.a.b: must be a finite number"),
        ({"a": [float("inf")]}, "userData.a.0: must be a finite number"),
        ({"a": float("-inf")}, "userData.a: must be a finite number"),
        ({"a": {"b": "x" * 4097}}, "userData.a.b: is longer than 4096 characters"),
        ({"a": {"b": "x\x00"}}, "userData.a.b: must not contain NUL"),
        ({"a": {"k\ud800": 1}}, "userData.a: key must be valid Unicode"),
        ({"a": {"k" * 257: 1}}, "userData.a: key longer than 256 characters"),
        ({"a": list(range(101))}, "userData.a: has more than 100 items"),
        ({"a": {f"k{i}": i for i in range(101)}}, "userData.a: has more than 100 keys"),
        ({f"k{i}": i for i in range(101)}, "userData: has more than 100 keys"),
        ({"a": [(1, 2)]}, "userData.a.0: must be a string, number"),
        ([1, 2], "userData: must be an object"),
        ("a=b", "userData: must be an object"),
        ("[1]", "userData: must be an object"),
        (5, "userData: must be an object"),
    ],
)
def test_user_data_outside_its_bounds_is_refused_naming_the_path(
    model: str, value: Any, message: str
) -> None:
    with pytest.raises(BadRequest) as exc:
        user_data(value, model)
    assert exc.value.status == 400
    assert exc.value.message.startswith(message), exc.value.message


def test_user_data_depth_and_size_bounds() -> None:
    deep: Any = 1
    for _ in range(USER_DATA_MAX_DEPTH):
        deep = [deep]
    assert user_data({"a": deep}) == {"a": deep}
    with pytest.raises(BadRequest, match=r"^userData\.a(\.0)+: nested deeper than 5 levels"):
        user_data({"a": [deep]})
    five = {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}
    assert user_data(five) == five
    with pytest.raises(BadRequest, match=r"^userData\.a\.b\.c\.d\.e\.f: nested deeper than 5"):
        user_data({"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}})
    fits = {f"k{i}": "x" * 150 for i in range(90)}  # about 14 KB as JSON
    assert len(json.dumps(fits, separators=(",", ":"))) < USER_DATA_MAX_BYTES
    assert user_data(fits) == fits
    too_big = {f"k{i}": ["x" * 1000] * 2 for i in range(9)}
    with pytest.raises(BadRequest, match=r"^userData: is larger than 16384 bytes as JSON"):
        user_data(too_big)


def test_user_data_as_the_java_sdk_sends_it_a_string() -> None:
    # CreateCallbackParms.userData is a String in the Java SDK: a JSON object in a string.
    assert user_data(json.dumps({"order": {"id": "A-1"}, "bad-key": 1})) == {"order": {"id": "A-1"}}
    assert user_data("") == {} and user_data("  ") == {}
    with pytest.raises(BadRequest, match=r"userData\.n: integer beyond"):
        user_data('{"n": 123456789012345678901}')


def test_push_targets_of_both_sdks_are_kept_in_one_list() -> None:
    java = [{"channel": "FCM", "target": "token-1"}]
    assert create(pushTargets=java).extra_params() == {"pushTargets": java}
    both = create(pushTargets=java, pushChannel="FCM", pushTarget="token-2", routePoint="RP1")
    assert both.extra_params() == {
        "routePoint": "RP1",
        "pushTargets": [*java, {"channel": "FCM", "target": "token-2"}],
    }
    assert "pushTargets" not in create().extra_params()
    with pytest.raises(BadRequest, match=r"^pushTarget: required with pushChannel"):
        create(pushChannel="FCM")
    with pytest.raises(BadRequest, match=r"^pushChannel: required with pushTarget"):
        create(pushTarget="t")
    for bad in (
        [{"channel": "FCM"}],
        [{"channel": "", "target": "t"}],
        [{"channel": "F CM", "target": "t"}],
        [{"channel": "FCM", "target": "t" * 4097}],
        [{"channel": "FCM", "target": "t"}] * 11,
        {"channel": "FCM", "target": "t"},
    ):
        with pytest.raises(ValidationError, match="pushTargets"):
            create(pushTargets=bad)


def test_every_value_is_checked_even_when_the_size_estimate_runs_high() -> None:
    """70 lists of 100 zeros is ~14 KB as JSON but estimated far above the limit (numbers count
    their widest): the integer at the very end must still be refused."""
    inner: dict[str, Any] = {f"k{i}": [0] * 100 for i in range(70)}
    assert user_data({"a": inner}) == {"a": inner}
    inner["k69"][99] = 2**62
    with pytest.raises(BadRequest, match=r"^userData\.a\.k69\.99: integer beyond"):
        user_data({"a": inner})
