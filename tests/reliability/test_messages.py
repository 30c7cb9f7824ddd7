"""Issue 11.6: the smaller cases — an empty score table, strict JSON, and messages that say what
is wrong (permission denied, infinite, symlink loop, argparse errors as ``deeplsm: error:``)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from deeplsm._utils import json_text, write_json
from tests.reliability.conftest import argv_for, assert_one_line, run


def _strict(text: str):
    def bad(token):
        raise AssertionError(f"not strict JSON: {token}")

    return json.loads(text, parse_constant=bad)


def test_empty_scores_file(mydata, tmp_path, capsys):
    (mydata / "scores.csv").write_text("")
    rc, _, err = run(capsys, argv_for("vlsm", mydata, str(tmp_path / "out")))
    assert_one_line(rc, err, match="scores.csv: the scores file is empty")


def test_header_only_scores_file(mydata, tmp_path, capsys):
    (mydata / "scores.csv").write_text("subject,score_1\n")
    rc, _, err = run(capsys, argv_for("vlsm", mydata, str(tmp_path / "out")))
    assert_one_line(rc, err, match="has no rows")


def test_infinite_score_is_called_infinite(mydata, tmp_path, capsys):
    df = pd.read_csv(mydata / "scores.csv")
    df.loc[4, "score_1"] = np.inf
    df.to_csv(mydata / "scores.csv", index=False)
    rc, _, err = run(capsys, argv_for("vlsm", mydata, str(tmp_path / "out")))
    line = assert_one_line(rc, err, match="infinite scores for 1 subject(s), e.g. sub-04")
    assert "NaN" not in line


def test_symlink_loop_is_called_a_loop(mydata, tmp_path, capsys):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    argv = argv_for("vlsm", mydata, str(tmp_path / "out"))
    argv[argv.index("--lesions") + 1] = str(loop)
    rc, _, err = run(capsys, argv)
    assert_one_line(rc, err, match="symlink loop")
    rc, _, err = run(capsys, argv_for("vlsm", mydata, str(loop / "out")))
    assert_one_line(rc, err, match="symlink loop")


def test_broken_symlink_is_called_broken(mydata, tmp_path, capsys):
    link = tmp_path / "scores.csv"
    link.symlink_to(tmp_path / "gone.csv")
    argv = argv_for("vlsm", mydata, str(tmp_path / "out"))
    argv[argv.index("--scores") + 1] = str(link)
    rc, _, err = run(capsys, argv)
    assert_one_line(rc, err, match="is a broken symlink")


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["train", "--epochs", "0", "--out", "x"], "argument --epochs: must be an integer >= 1, got '0'"),
        (["simulate", "--out", "x"], "the following arguments are required: --lesions"),
        (["vlsm", "--lesions", "a", "--scores", "b", "--out", "x", "--test", "z"],
         "argument --test: invalid choice"),
        (["nope"], "invalid choice: 'nope'"),
    ],
)
def test_argparse_errors_are_one_deeplsm_line(argv, match, capsys):
    with pytest.raises(SystemExit) as exc:
        run(capsys, argv)
    err = capsys.readouterr().err
    assert_one_line(exc.value.code, err, match=match)
    assert "deeplsm train:" not in err and "usage:" not in err


def test_vlsm_summary_is_strict_json_with_the_reason_for_null(mydata, tmp_path, capsys):
    """5 permutations cannot reach alpha 0.05: the FWE threshold is infinite."""
    out = tmp_path / "out"
    assert run(capsys, argv_for("vlsm", mydata, str(out)))[0] == 0
    summary = _strict((out / "summary.json").read_text())
    entry = summary["outputs"]["score_1"]
    assert entry["threshold"] is None
    assert entry["threshold_reason"].startswith("infinite")


def test_write_json_is_strict_and_records_what_was_not_finite(tmp_path):
    write_json(tmp_path / "a.json", {"t": float("inf"), "x": [1.0, np.float32("nan")], "n": {"m": -math.inf}})
    body = _strict((tmp_path / "a.json").read_text())
    assert body["t"] is None and body["x"] == [1.0, None] and body["n"]["m"] is None
    assert body["non_finite_values"]["t"] == "inf"
    assert body["non_finite_values"]["x[1]"] == "nan"
    assert body["non_finite_values"]["n.m"] == "-inf"
    assert "non_finite_values" not in _strict(json_text({"ok": 1.5}))
