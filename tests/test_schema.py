"""The shared ranges: one definition gives the API check, the CLI type and the message."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict

from deeplsm._schema import (
    Float,
    Int,
    MinSubjects,
    NonNegativeInt,
    OpenUnitFloat,
    PositiveFloat,
    PositiveInt,
    Seed,
    VoxelsOrMm,
    check_model,
    check_param,
    cli_type,
    describe,
    partial_model,
)
from deeplsm.exceptions import DeepLSMError


@pytest.mark.parametrize(("tp", "text"), [
    (PositiveInt, "an integer >= 1"),
    (NonNegativeInt, "an integer >= 0"),
    (Seed, "an integer from 0 to 4294967295"),
    (PositiveFloat, "a number > 0"),
    (OpenUnitFloat, "a number > 0 and < 1"),
    (Float(ge=0, le=1), "a number >= 0 and <= 1"),
    (PositiveInt | None, "an integer >= 1, or None"),
    (MinSubjects, "an integer >= 1, or a number > 0 and < 1"),
])
def test_descriptions(tp, text):
    assert describe(tp) == text


@pytest.mark.parametrize("bad", ["2", 1.5, 2.0, True, False, None, [1], float("nan")])
def test_integers_are_strict(bad):
    with pytest.raises(DeepLSMError, match=r"^n = .*: must be an integer >= 1$"):
        check_param("n", bad, PositiveInt)


def test_numbers_accept_integers_and_numpy_scalars_but_not_strings_or_booleans():
    assert check_param("lr", 1, PositiveFloat) == 1.0
    assert check_param("n", np.int64(3), PositiveInt) == 3
    assert check_param("lr", np.float32(0.5), PositiveFloat) == 0.5
    for bad in ("0.1", True, float("inf"), float("nan"), 0, -1e-9):
        with pytest.raises(DeepLSMError, match=r"^lr = .*: must be a number > 0$"):
            check_param("lr", bad, PositiveFloat)


def test_voxels_or_mm():
    assert check_param("window", 3, VoxelsOrMm) == 3
    assert check_param("window", " 12MM", VoxelsOrMm) == "12mm"
    for bad in (0, "8", "0mm", "-3mm", "twelve mm", 2.5, True):
        with pytest.raises(DeepLSMError, match=r"window = .*: must be an integer >= 1 .voxels. or a "
                           r"length in mm"):
            check_param("window", bad, VoxelsOrMm)


@pytest.mark.parametrize("tp", [PositiveInt, NonNegativeInt, PositiveFloat, OpenUnitFloat, MinSubjects,
                                Seed, Int(ge=2)])
def test_cli_type_accepts_exactly_what_the_api_accepts(tp):
    """The argparse type and check_param share one definition: same verdict on every value."""
    parse = cli_type(tp)
    for text in ("0", "1", "2", "-1", "0.5", "1.5", "2.0", "1e-3", "inf", "nan", "x", "", "True",
                 "4294967296"):
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                value = text
        try:
            check_param("v", value, tp)
            api_ok = True
        except DeepLSMError:
            api_ok = False
        try:
            parse(text)
            cli_ok = True
        except argparse.ArgumentTypeError as err:
            cli_ok = False
            assert str(err) == f"must be {describe(tp)}, got {text!r}"
        assert cli_ok == api_ok, (text, describe(tp))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: PositiveInt
    clip: PositiveFloat | None


def test_partial_model_keeps_none_only_where_the_type_allows_it():
    Partial = partial_model(_Model)
    assert check_model(Partial, {"clip": None}).model_dump(exclude_unset=True) == {"clip": None}
    assert check_model(Partial, {}).model_dump(exclude_unset=True) == {}
    with pytest.raises(DeepLSMError, match=r"^hp\.epochs = None: must be an integer >= 1$"):
        check_model(Partial, {"epochs": None}, prefix="hp")
    with pytest.raises(DeepLSMError, match=r"^unknown setting hp\.momentum; known: epochs, clip$"):
        check_model(Partial, {"momentum": 0.9}, prefix="hp")
