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
                        types.SimpleNamespace(load_trained=lambda path: run))
    truth = np.zeros(SHAPE, np.uint8)
    truth[1:3, 1:4, 1:4] = 1
    truth[4:6, 4:7, 4:8] = 2
    nib.save(nib.Nifti1Image(truth, affine), tmp_path / "rois.nii.gz")
    return run_dir


def test_explain_then_evaluate(tiny_run, tmp_path, capsys):
    rc = main(["explain", "--run", str(tiny_run), "--methods", "ig,gradshap,occlusion",
               "--occlusion-window", "3", "--occlusion-stride", "2", "--n-steps", "4",
               "--n-samples", "2", "--quiet"])
    assert rc == 0
    maps = tiny_run / "maps"
    names = sorted(p.name for p in maps.glob("*.nii.gz"))
    assert names == [f"{m}_score_{k}.nii.gz" for m in ("gradshap", "ig", "occlusion") for k in (1, 2)]
    assert (maps / "sums" / "ig_score_1.nii.gz").exists()
    assert json.loads((maps / "maps.json").read_text())["n_subjects"] == 3
    out = tmp_path / "eval" / "metrics.json"
    rc = main(["evaluate", "--maps", str(maps), "--truth", str(tmp_path / "rois.nii.gz"),
               "--out", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert "mask" in res and "restricted to the mask" in res["mask"]
    r = res["results"]["occlusion"]["score_2"]
    for key in ("pr_auc", "average_precision", "prevalence", "cdc", "dice_best", "peak_distance_mm",
                "com_distance_mm", "precision", "recall", "thresholds"):
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
