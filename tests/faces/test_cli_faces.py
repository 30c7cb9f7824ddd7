"""``deeplsm faces`` end to end (quick synthetic run, both modes) and its user errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from deeplsm.cli import main
from tests.faces.conftest import write_jpeg


def test_quick_synthetic_both_modes_writes_every_output(tmp_path, capsys):
    out = tmp_path / "faces"
    rc = main(["faces", "--synthetic", "--quick", "--mode", "both", "--out", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    expected = ["config.json", "metrics.json", "table3.csv", "table3.md", "predictions.csv", "split.csv",
                "explanations.npz", "localisation.csv", "fig5_predictions.png", "fig6_multi.png",
                "fig6_single.png", "learning_curves.png", "report.html"]
    for name in expected:
        assert (out / name).is_file(), name
    for key in ("multi", "single_age", "single_sex", "single_ethnicity"):
        assert (out / "checkpoints" / key / "best.ckpt").is_file()
        assert not (out / "checkpoints" / key / "last.ckpt").exists()  # no resume: not written
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["models"]) == {"multi", "single"}
    assert [r["output"] for r in m["table3"]] == ["age", "sex", "ethnicity"]
    assert all(r["single"] is not None and r["multi"] is not None for r in m["table3"])
    assert m["timing"]["total_seconds"] > 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["versions"]["torch"] and cfg["hyperparameters"]["batch_size"] == 16
    assert cfg["hyperparameters"]["optimizer"] == "adam"
    assert cfg["explanations"]["occlusion"]["window"] == [3, 3, 3]
    assert cfg["explanations"]["gradshap"]["nt_samples"] == 10
    loc = pd.read_csv(out / "localisation.csv")
    assert set(loc["model"]) == {"multi", "single"} and set(loc["method"]) == {"ig", "gradshap", "occlusion"}
    assert len(loc) == 2 * 3 * 3
    z = np.load(out / "explanations.npz")
    img = cfg["explanations"]["images"][0]
    assert z[f"multi/sex/occlusion/{img}"].shape == (32, 32)
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "balanced accuracy" in html.replace("_", " ")
    assert "Localisation" in html
    preds = pd.read_csv(out / "predictions.csv")
    assert {"multi_age_pred", "single_ethnicity_pred", "sex_true"} <= set(preds.columns)
    assert "wrote" in capsys.readouterr().out


def test_missing_folder_is_a_user_error(tmp_path, capsys):
    rc = main(["faces", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert capsys.readouterr().err.startswith("deeplsm: error: image folder does not exist")
    assert not (tmp_path / "o").exists()


def test_folder_without_valid_names_is_a_user_error(tmp_path, capsys, rng):
    data = tmp_path / "imgs"
    data.mkdir()
    write_jpeg(data / "39_1_20170116174525125.jpg.chip.jpg", rng)
    rc = main(["faces", "--data", str(data), "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "no UTKFace images" in err and "1 with malformed names" in err


def test_bad_labels_csv_is_a_user_error(tmp_path, capsys, rng):
    data = tmp_path / "imgs"
    data.mkdir()
    write_jpeg(data / "a.jpg", rng)
    (tmp_path / "labels.csv").write_text("name,score\na.jpg,3\n")
    rc = main(["faces", "--data", str(data), "--labels", str(tmp_path / "labels.csv"),
               "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "needs a file column" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "match"), [
    (["--data", "x", "--quick"], "--quick runs the synthetic set"),
    (["--synthetic", "--labels", "l.csv"], "--labels needs --data"),
])
def test_option_conflicts(tmp_path, capsys, argv, match):
    rc = main(["faces", *argv, "--out", str(tmp_path / "o")])
    assert rc == 2
    assert match in capsys.readouterr().err
