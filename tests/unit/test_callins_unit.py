"""Pure logic of Click-To-Call-In: rotation, access codes, group configuration."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dialback.callins.schemas import CallInGroupConfig, CreateCallIn
from dialback.callins.service import access_code, pick_number
from dialback.kit.errors import BadRequest


def test_pick_number_round_robin() -> None:
    pool = ["a", "b", "c"]
    assert [pick_number(pool, n) for n in range(1, 8)] == ["a", "b", "c", "a", "b", "c", "a"]
    assert pick_number(["only"], 12345) == "only"


@pytest.mark.parametrize("length", [4, 6, 10])
def test_access_code_digits(length: int) -> None:
    codes = {access_code(length) for _ in range(2000)}
    assert all(len(c) == length and c.isdigit() and c[0] != "0" for c in codes)
    assert len(codes) > 1000  # random, not a constant


def test_group_config_normalises_and_dumps_camel_case() -> None:
    cfg = CallInGroupConfig.model_validate(
        {"numbers": ["020 7946 0000"], "defaultCountry": "gb", "accessCode": {"enabled": False}}
    )
    assert cfg.numbers == ["+442079460000"]
    assert cfg.dump() == {
        "defaultCountry": "GB",
        "numbers": ["+442079460000"],
        "accessCode": {"enabled": False, "length": 6},
        "expirySeconds": 900,
    }
    assert CallInGroupConfig.model_validate(cfg.dump()) == cfg


@pytest.mark.parametrize(
    "body",
    [
        {"numbers": ["+1415555010"]},
        {"numbers": ["+14155550100", "+1 (415) 555-0100"]},
        {"numbers": ["+14155550100"], "expirySeconds": 10},
        {"numbers": ["+14155550100"], "accessCode": {"length": 12}},
        {"numbers": ["+14155550100"], "defaultCountry": "ZZ"},
        {"numbers": ["+14155550100"], "extra": 1},
    ],
)
def test_group_config_rejects(body: dict) -> None:
    with pytest.raises(ValidationError):
        CallInGroupConfig.model_validate(body)


def test_create_user_data_follows_callback_rules() -> None:
    req = CreateCallIn.model_validate(
        {"groupName": "g", "userData": {"ok": 1, "not-ident": 2, "_x": None}, "unknown": True}
    )
    assert req.userData == {"ok": 1, "_x": None}
    with pytest.raises(BadRequest, match=r"^userData\.k: is longer than 4096 characters$"):
        CreateCallIn.model_validate({"groupName": "g", "userData": {"k": "x" * 4097}})


def test_stored_config_is_not_reparsed() -> None:
    # Trusted rows skip parsing: even a value the API would refuse is read back unchanged.
    stored = {"numbers": ["+1415555010"], "defaultCountry": "US"}
    cfg = CallInGroupConfig.model_validate(stored, context={"stored": True})
    assert cfg.numbers == ["+1415555010"]
    with pytest.raises(ValidationError):
        CallInGroupConfig.model_validate({"numbers": ["+1415555010"]})
