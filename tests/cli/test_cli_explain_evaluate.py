"""End to end: ``deeplsm explain --run`` on a tiny run, then ``deeplsm evaluate`` on its maps."""

import json
import sys
import types

import nibabel as nib
import numpy as np
import pytest
import torch

from deeplsm.cli import main
from deeplsm.cohort import LesionCohort

SHAPE = (7, 8, 9)


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 2, 3, padding=1)
        self.fc = torch.nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3, 4)))


@pytest.fixture
def tiny_run(tmp_path, monkeypatch):
    """A run folder and a stand-in for deeplsm.train.load_trained (the run-directory contract)."""
    rng = np.random.default_rng(0)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = [-10, -12, -8]
    cohort = LesionCohort([f"sub-{i}" for i in range(4)],
                          (rng.random((4, *SHAPE)) < 0.08).astype(np.uint8), affine)
    torch.manual_seed(0)
    net = _Net()
    run = types.SimpleNamespace(
        cohort=cohort, split={s: "test" if i < 3 else "train" for i, s in enumerate(cohort.subject_ids)},
        task=types.SimpleNamespace(names=["score_1", "score_2"]),
        model_for=lambda name: (net, {"score_1": 0, "score_2": 1}[name]),
    )
    monkeypatch.setitem(sys.modules, "deeplsm.train",
                        types.SimpleNamespace(load_trained=lambda path, map_location="cpu": run))
    truth = np.zeros(SHAPE, np.uint8)
    truth[1:3, 1:4, 1:4] = 1
    truth[4:6, 4:7, 4:8] = 2
    nib.save(nib.Nifti1Image(truth, affine), tmp_path / "rois.nii.gz")
    return run_dir


def test_explain_then_evaluate(tiny_run, tmp_path, capsys):
    (tmp_path / "rois.tsv").write_text("index\tname\n1\troi one\n2\troi two\n")
    rc = main(["explain", "--run", str(tiny_run), "--methods", "ig,gradshap,occlusion",
               "--occlusion-window", "3", "--occlusion-stride", "2", "--n-steps", "4",
               "--n-samples", "2", "--quiet", "--atlas", str(tmp_path / "rois.nii.gz"),
               "--atlas-labels", str(tmp_path / "rois.tsv")])
    assert rc == 0
    maps = tiny_run / "maps"
    names = sorted(p.name for p in maps.glob("*.nii.gz"))
    assert names == [f"{m}_score_{k}.nii.gz" for m in ("gradshap", "ig", "occlusion") for k in (1, 2)]
    for name in names:  # a labelled cluster table next to every map
        table = (maps / name.replace(".nii.gz", "_clusters.tsv")).read_text().splitlines()
        assert table[0].split("\t")[-2:] == ["label", "cluster_labels"]
    assert (maps / "sums" / "ig_score_1.nii.gz").exists()
    assert json.loads((maps / "maps.json").read_text())["n_subjects"] == 3
    out = tmp_path / "eval" / "metrics.json"
    rc = main(["evaluate", "--maps", str(maps), "--truth", str(tmp_path / "rois.nii.gz"),
               "--out", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert "mask" in res and "restricted to the mask" in res["mask"]
    r = res["results"]["occlusion"]["score_2"]
    for key in ("pr_auc", "average_precision", "pr_auc_trapezoid", "prevalence", "cdc", "dice_best",
                "peak_distance_mm", "com_distance_mm", "precision", "recall", "thresholds"):
        assert key in r
    assert len(r["precision"]) == 1000 and r["label"] == 2
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert "PR-AUC" in capsys.readouterr().out


def test_explain_bad_method_and_missing_run(tiny_run, capsys):
    assert main(["explain", "--run", str(tiny_run), "--methods", "lime"]) == 2
    assert "deeplsm: error: unknown method 'lime'" in capsys.readouterr().err
    assert main(["explain", "--run", str(tiny_run / "nope"), "--methods", "ig"]) == 2
    assert "run folder does not exist" in capsys.readouterr().err


def test_evaluate_bad_inputs(tmp_path, tiny_run, capsys):
    (tmp_path / "empty").mkdir()
    rc = main(["evaluate", "--maps", str(tmp_path / "empty"), "--truth", str(tmp_path / "rois.nii.gz"),
               "--out", str(tmp_path / "x.json")])
    assert rc == 2 and "no NIfTI maps" in capsys.readouterr().err
    rc = main(["evaluate", "--maps", str(tmp_path / "rois.nii.gz"), "--truth", str(tmp_path / "none.nii.gz"),
               "--out", str(tmp_path / "x.json")])
    assert rc == 2 and "truth does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "--maps", "m", "--truth", "t", "--out", "o", "--labels", "score_1"])
    assert not (tmp_path / "x.json").exists()


def test_explain_real_trained_run(tmp_path, monkeypatch, capsys):
    """A real run from deeplsm.train (1 epoch, tiny grid), explained and evaluated end to end."""
    pytest.importorskip("lightning")
    import pandas as pd

    from deeplsm.train import train_run

    monkeypatch.setenv("CI", "1")
    rng = np.random.default_rng(1)
    shape = (16, 20, 16)
    n = 20
    data = np.zeros((n, *shape), np.uint8)
    for i in range(n):
        c = rng.integers(2, 13, 3)
        data[i, c[0]:c[0] + 4, c[1]:c[1] + 5, c[2]:c[2] + 3] = 1
    ids = [f"sub-{i:02d}" for i in range(n)]
    cohort = LesionCohort(ids, data, np.diag([3.0, 3.0, 3.0, 1.0]))
    scores = pd.DataFrame({"score_1": data[:, 3:8, 4:10, 3:8].reshape(n, -1).mean(1),
                           "score_2": data[:, 8:13, 10:16, 8:13].reshape(n, -1).mean(1)},
                          index=pd.Index(ids, name="subject"))
    run_dir = train_run(tmp_path / "run", cohort, scores, overrides={"max_epochs": 1, "batch_size": 8},
                        accelerator="cpu", devices=1, verbose=False)
    rc = main(["explain", "--run", str(run_dir), "--methods", "ig,occlusion", "--n-steps", "2",
               "--occlusion-window", "4", "--occlusion-stride", "4", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in (run_dir / "maps").glob("*.nii.gz")) == [
        "ig_score_1.nii.gz", "ig_score_2.nii.gz", "occlusion_score_1.nii.gz", "occlusion_score_2.nii.gz"]
    truth = np.zeros(shape, np.uint8)
    truth[3:8, 4:10, 3:8] = 1
    truth[8:13, 10:16, 8:13] = 2
    nib.save(nib.Nifti1Image(truth, cohort.affine), tmp_path / "rois.nii.gz")
    rc = main(["evaluate", "--maps", str(run_dir / "maps"), "--truth", str(tmp_path / "rois.nii.gz"),
               "--out", str(tmp_path / "ev.json"), "--no-plot"])
    assert rc == 0
    assert set(json.loads((tmp_path / "ev.json").read_text())["results"]) == {"ig", "occlusion"}
