"""Every user-supplied string reaches the HTML reports as text, never as live markup."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from deeplsm.faces._report import write_report as write_faces_report
from deeplsm.report import write_report
from deeplsm.study import Study, make_config, run_study

COLUMN = "naming<img src=x onerror=alert(1)>_1"
SUBJECT = "<img src=x onerror=alert(2)>"
FOLDER = "lesions<img src=x onerror=alert(3)>"


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def _assert_inert(page: _Page) -> None:
    for tag, attrs in page.tags:
        assert not any(a.startswith("on") for a in attrs), (tag, attrs)
        if tag == "img":
            assert attrs["src"].startswith("data:image/png;base64,"), attrs
    assert not [t for t, _ in page.tags if t == "script"]


@pytest.fixture
def hostile_study(tmp_path):
    """A classical-only study (no training) whose score, subject and folder names are markup."""
    rng = np.random.default_rng(0)
    folder = tmp_path / FOLDER
    folder.mkdir()
    ids = [SUBJECT, *[f"s{i:02d}" for i in range(23)]]
    data = (rng.random((24, 7, 8, 9)) < 0.4).astype(np.uint8)
    for sid, d in zip(ids, data):
        nib.save(nib.Nifti1Image(d, np.eye(4)), folder / f"{sid}.nii.gz")
    labels = np.zeros((7, 8, 9), np.int16)
    labels[1:3, 1:3, 1:3], labels[4:6, 4:6, 4:6] = 1, 2
    nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "rois.nii.gz")
    fr = [data[:, labels == k].mean(1) for k in (1, 2)]
    scores = pd.DataFrame({"subject": ids, COLUMN: fr[0], "score_2": fr[1]})
    scores.to_csv(tmp_path / "scores.csv", index=False)
    cfg = make_config({
        "cohort": {"source": str(folder), "voxel_size": None},
        "scores": {"source": str(tmp_path / "scores.csv"), "truth": str(tmp_path / "rois.nii.gz")},
        "models": {"modes": []},
        "classical": {"methods": ["vlsm"], "subjects": "all", "min_subjects": 3, "permutations": 10},
    })
    out = tmp_path / "out"
    metrics = run_study(cfg, out, verbose=False)
    return Study(cfg, out, verbose=False), metrics


def test_study_report_escapes_score_names_subjects_and_paths(hostile_study):
    study, metrics = hostile_study
    # The map of the hostile score (vlsm_<score>.nii.gz) is matched to its ROI by name, so the
    # report has one method, vlsm, with the hostile score as a column.
    assert set(metrics["localization"]) == {"vlsm"}
    # A prediction section too, so that the Table IV/V rows carry the name.
    metrics["prediction"] = {"multi": {
        COLUMN: {"mse": 0.01, "r2_pearson": 0.5, "p_value": 1e-3, "r2": 0.4},
        "score_2": {"mse": 0.02, "r2_pearson": 0.6, "p_value": 1e-4, "r2": 0.5}}}
    html = write_report(study, metrics).read_text(encoding="utf-8")
    page = _parse(html)
    _assert_inert(page)
    assert "<img src=x" not in html
    text = "".join(page.text)
    assert f"scores: {COLUMN}, score_2." in text
    # Tables IV and V rows, a column of the six localisation tables, the cluster section heading,
    # and its line in the reading (its map is scored against label 1, by its trailing number)
    assert page.text.count(COLUMN) == 2 + 6 + 1 + 1
    # The lesion folder's name (in the configuration) is text too.
    config = json.loads(next(t for t in page.text if '"cohort"' in t))
    assert config["cohort"]["source"].endswith(FOLDER)
    # The figures are all there, as embedded PNGs.
    alts = [a["alt"] for t, a in page.tags if t == "img"]
    assert alts == ["frequency map", "score distributions", "example subject", "voxels tested per overlap",
                    "group maps", "PR curves"]


def test_faces_report_escapes_labels_ids_and_paths(tmp_path):
    png = tmp_path / f"fig6_{SUBJECT}.png"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.imsave(png, np.zeros((4, 4)))
    table = pd.DataFrame({"output": [COLUMN], "kind": ["regression"], "metric": ["mse"],
                          "single": [0.5], "multi": [0.25]})
    loc = pd.DataFrame({"model": ["multi"], "output": [COLUMN], "method": ["ig"], "prevalence": [0.1],
                        "pr_auc": [0.5], "average_precision": [0.4], "cdc": [0.3], "dice_best": [0.2],
                        "peak_inside": [1.0]})
    config = {"data": {"loader": "image folder", "path": f"/data/{FOLDER}", "image_size": [32, 32],
                       "image": SUBJECT},
              "hyperparameters": {"max_epochs": 1, "batch_size": 16, "optimizer": "adam"}}
    summary = {"n_images": {"train": 6, "val": 2, "test": 2}, "mode": "both", "seed": 0,
               "timing": {"total_seconds": 3.0}}
    out = write_faces_report(tmp_path / "report.html", config=config, summary=summary, table=table,
                             loc=loc, figures={f"fig6_{SUBJECT}": png})
    html = out.read_text(encoding="utf-8")
    page = _parse(html)
    _assert_inert(page)
    text = "".join(page.text)
    assert text.count(COLUMN) >= 2  # Table III row and the localisation row
    assert f"Explanations, {SUBJECT}-output model" in text
    assert f"(/data/{FOLDER})" in text
    assert [a["alt"] for t, a in page.tags if t == "img"] == [png.name]
    assert "0.50" in text and "0.25" in text  # Table III values formatted as before
