"""Training through the Python API: splits, both modes, checkpoints, resume and metrics."""

from __future__ import annotations

import json

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from deeplsm.cohort import LesionCohort
from deeplsm.evaluate import multiclass_metrics, prediction_metrics, regression_metrics
from deeplsm.exceptions import DeepLSMError
from deeplsm.models import OutputSpec, TaskSpec
from deeplsm.train import (
    get_preset,
    kfold_split,
    load_trained,
    resolve_outputs,
    resume_run,
    split_subjects,
    train_run,
)
from deeplsm.train._module import LSMModule, _keep_fp32
from deeplsm.train._run import read_learning_curves

FAST = {"max_epochs": 2, "batch_size": 8}


# --- splits -------------------------------------------------------------------------------------
def test_split_is_seeded_and_sized():
    ids = [f"s{i}" for i in range(50)]
    a, b, c = split_subjects(ids, random_state=3), split_subjects(ids, random_state=3), split_subjects(
        ids, random_state=4)
    assert a == b and a != c
    counts = pd.Series(a).value_counts()
    assert (counts["train"], counts["val"], counts["test"]) == (30, 10, 10)


def test_split_too_few_subjects():
    with pytest.raises(DeepLSMError, match="too few subjects to split: 6 subjects give 4/1/1"):
        split_subjects([f"s{i}" for i in range(6)])


def test_kfold_partitions_subjects():
    ids = [f"s{i}" for i in range(23)]
    tests = [s for f in range(5) for s, v in kfold_split(ids, 5, f, random_state=0).items() if v == "test"]
    assert sorted(tests) == sorted(ids)
    one = kfold_split(ids, 5, 2, random_state=0)
    assert set(one.values()) == {"train", "val", "test"}
    with pytest.raises(DeepLSMError, match=r"fold must be in 0\.\.4"):
        kfold_split(ids, 5, 5)


def test_presets():
    paper = get_preset("paper")
    assert (paper["optimizer"], paper["lr"], paper["milestones"], paper["gamma"], paper["batch_size"]) == (
        "adam", 1e-5, [100], 0.1, 4)
    assert get_preset("fast", {"max_epochs": 3})["max_epochs"] == 3
    with pytest.raises(DeepLSMError, match="unknown preset"):
        get_preset("slow")
    with pytest.raises(DeepLSMError, match="unknown hyperparameter momentum"):
        get_preset("fast", {"momentum": 0.9})


def test_paper_schedule_drops_after_epoch_100():
    module = LSMModule([{"name": "a"}], **{k: get_preset("paper")[k] for k in (
        "optimizer", "lr", "scheduler", "milestones", "gamma")})
    cfg = module.configure_optimizers()
    opt, sched = cfg["optimizer"], cfg["lr_scheduler"]["scheduler"]
    assert isinstance(opt, torch.optim.Adam)
    lrs = []
    for _ in range(102):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[99] == pytest.approx(1e-5) and lrs[100] == pytest.approx(1e-6)


# --- outputs and targets ------------------------------------------------------------------------
def test_resolve_outputs_infers_kinds(tiny):
    _, scores = tiny
    s = scores.assign(age=np.linspace(50, 90, len(scores)))
    task = resolve_outputs(s, ["score_a", "age", "flag:binary@2", "grp:multiclass"])
    assert [o.kind for o in task] == ["regression01", "regression", "binary", "multiclass"]
    assert task.get("grp").n_classes == 3 and task.get("flag").weight == 2.0


def test_bad_targets(tiny, tmp_path):
    cohort, scores = tiny
    with pytest.raises(DeepLSMError, match="'age' is outside \\[0, 1\\]"):
        train_run(tmp_path / "r", cohort, scores.assign(age=50.0), outputs=["age:regression01"])
    with pytest.raises(DeepLSMError, match="'score_a' must be 0/1 for a binary output"):
        train_run(tmp_path / "r", cohort, scores, outputs=["score_a:binary"])
    with pytest.raises(DeepLSMError, match=r"class labels 0\.\.1"):
        train_run(tmp_path / "r", cohort, scores, outputs=["grp:multiclass:2"])
    with pytest.raises(DeepLSMError, match="missing score column 'nope'"):
        train_run(tmp_path / "r", cohort, scores, outputs=["nope"])
    with pytest.raises(DeepLSMError, match=r"1 of 24 lesion subjects have no score, e\.g\. sub-000"):
        train_run(tmp_path / "r", cohort, scores.iloc[1:])
    with pytest.raises(DeepLSMError, match="mixup only applies when every output is a regression"):
        train_run(tmp_path / "r", cohort, scores, outputs=["score_a", "flag:binary"],
                  overrides={"mixup_alpha": 0.2})
    small = cohort.subset(list(range(6)))
    with pytest.raises(DeepLSMError, match="too few subjects to split"):
        train_run(tmp_path / "r", small, scores)
    assert not (tmp_path / "r").exists()


# --- metrics ------------------------------------------------------------------------------------
def test_regression_metrics_against_scipy():
    rng = np.random.default_rng(0)
    t = rng.uniform(size=40)
    p = t + rng.normal(0, 0.1, 40)
    m = regression_metrics(t, p)
    r, pval = stats.pearsonr(t, p)
    assert m["r2_pearson"] == pytest.approx(r**2) and m["pearson_p"] == pytest.approx(pval)
    assert m["mse"] == pytest.approx(np.mean((t - p) ** 2))
    assert m["r2_score"] == pytest.approx(1 - np.sum((t - p) ** 2) / np.sum((t - t.mean()) ** 2))
    assert regression_metrics(t, np.zeros(40))["r2_pearson"] is None


def test_classification_metrics():
    prob = np.array([[0.9, 0.1, 0], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    m = multiclass_metrics([0, 1, 2, 2], prob)
    assert m["accuracy"] == 0.75 and m["balanced_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)
    task = TaskSpec([OutputSpec("b", "binary"), OutputSpec("g", "multiclass", n_classes=3)])
    out = prediction_metrics(task, np.array([[1, 0], [0, 1], [1, 2], [0, 2]]),
                             np.column_stack([[0.8, 0.3, 0.4, 0.1], prob]))
    assert out["b"]["accuracy"] == 0.75 and out["g"]["accuracy"] == 0.75


# --- training -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def multi_run(tmp_path_factory, tiny):
    cohort, scores = tiny
    out = tmp_path_factory.mktemp("runs") / "multi"
    train_run(out, cohort, scores, outputs=["score_a", "score_b"], mode="multi", seed=1,
              overrides={"max_epochs": 3, "batch_size": 8}, verbose=False,
              sources={"lesions": "tiny", "scores": "tiny.csv"})
    return out


def test_multi_run_directory(multi_run, tiny):
    cohort, scores = tiny
    for name in ("config.json", "cohort.lesions.npz", "split.csv", "scores.csv", "metrics.json",
                 "predictions.csv", "learning_curves.png", "checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        assert (multi_run / name).is_file(), name
    cfg = json.loads((multi_run / "config.json").read_text())
    assert cfg["mode"] == "multi" and cfg["preset"] == "fast" and cfg["seed"] == 1
    assert cfg["outputs"] == [{"name": "score_a", "kind": "regression01", "n_classes": None, "weight": 1.0},
                              {"name": "score_b", "kind": "regression01", "n_classes": None, "weight": 1.0}]
    assert cfg["lesions"]["grid"]["shape"] == list(cohort.shape)
    assert cfg["lesions"]["grid"]["voxel_size"] == [3.0, 3.0, 3.0]
    assert cfg["split"]["fractions"] == [0.6, 0.2, 0.2]
    assert cfg["hyperparameters"]["max_epochs"] == 3 and "torch" in cfg["versions"]
    assert cfg["hyperparameters"]["mixup_alpha"] == 0.4  # the fast preset's, all outputs regression
    split = pd.read_csv(multi_run / "split.csv", dtype=str)
    assert dict(zip(split.subject, split.split)) == split_subjects(cohort.subject_ids, random_state=1)
    preds = pd.read_csv(multi_run / "predictions.csv", dtype={"subject": str})
    assert list(preds.columns) == ["subject", "split", "score_a_true", "score_a_pred",
                                   "score_b_true", "score_b_pred"]
    np.testing.assert_allclose(preds.score_b_true, scores.score_b, rtol=1e-6)
    metrics = json.loads((multi_run / "metrics.json").read_text())
    assert set(metrics["test"]["score_a"]) >= {"mse", "r2_pearson", "pearson_p", "r2_score"}
    assert metrics["n_subjects"] == {"train": 14, "val": 5, "test": 5}


def test_loss_decreases_on_learnable_signal(multi_run):
    curves = read_learning_curves(multi_run, "multi")
    assert len(curves) == 3
    assert curves.train_loss.iloc[-1] < 0.5 * curves.train_loss.iloc[0]
    assert curves.val_loss.iloc[-1] < curves.val_loss.iloc[0]


def test_checkpoint_reloads_to_identical_predictions(multi_run):
    run = load_trained(multi_run)
    assert set(run.models) == {"multi"} and not run.models["multi"].training
    net, col = run.model_for("score_b")
    assert col == 1
    preds = pd.read_csv(multi_run / "predictions.csv", dtype={"subject": str})
    x = torch.from_numpy(run.cohort.data[:, None]).float()
    with torch.no_grad():
        out = net(x).numpy()
    np.testing.assert_allclose(out[:, 0], preds.score_a_pred, atol=1e-6)
    np.testing.assert_allclose(out[:, col], preds.score_b_pred, atol=1e-6)
    again = load_trained(multi_run).predict()
    np.testing.assert_allclose(again.score_b_pred, preds.score_b_pred, atol=1e-6)
    assert run.subjects("test") == [s for s in run.cohort.subject_ids if run.split[s] == "test"]


def test_existing_run_is_not_overwritten(multi_run, tiny):
    with pytest.raises(DeepLSMError, match="holds earlier deeplsm output; use --resume"):
        train_run(multi_run, *tiny)


def test_single_mode_with_classification(tmp_path, tiny):
    cohort, scores = tiny
    out = tmp_path / "single"
    train_run(out, cohort, scores, outputs=["flag:binary", "grp:multiclass"], mode="single",
              overrides={"max_epochs": 1, "batch_size": 8}, verbose=False)
    for name in ("flag", "grp"):
        assert (out / "checkpoints" / name / "best.ckpt").is_file()
        assert (out / "logs" / name / "metrics.csv").is_file()
    run = load_trained(out)
    assert set(run.models) == {"flag", "grp"}
    assert run.model_for("grp")[1] == [0, 1, 2] and run.model_for("flag")[1] == 0
    with torch.no_grad():
        out_grp = run.models["grp"](torch.zeros(2, 1, *cohort.shape))
    assert out_grp.shape == (2, 3)
    assert json.loads((out / "config.json").read_text())["hyperparameters"]["mixup_alpha"] == 0.0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]["grp"]) == {"n", "accuracy", "balanced_accuracy"}
    assert set(metrics["test"]["flag"]) == {"n", "accuracy"}
    preds = pd.read_csv(out / "predictions.csv")
    assert {"grp_true", "grp_pred", "grp_p0", "grp_p2", "flag_pred"} <= set(preds.columns)


class _Crash(L.Callback):
    """Simulates a kill in the second epoch, after the first epoch's checkpoints were written."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == 1:
            raise RuntimeError("simulated kill")


def test_resume_after_interruption(tmp_path, tiny):
    cohort, scores = tiny
    out = tmp_path / "killed"
    with pytest.raises(RuntimeError, match="simulated kill"):
        train_run(out, cohort, scores, outputs=["score_a"], overrides={"max_epochs": 2, "batch_size": 8},
                  verbose=False, callbacks=[_Crash()])
    assert (out / "checkpoints" / "last.ckpt").is_file() and not (out / "metrics.json").exists()
    resume_run(out, verbose=False)
    done = json.loads((out / "checkpoints" / "complete.json").read_text())
    assert done["resumed"] and done["epochs"] == 2 and done["best_epoch"] in (0, 1)
    assert (out / "metrics.json").is_file()
    assert list(read_learning_curves(out, "multi").epoch) == [0, 1]


def test_bf16_guard_keeps_layer4_fp32():
    module = LSMModule([{"name": "a"}], channels_last=True)
    layer4 = module.net.backbone.layer4
    _keep_fp32(layer4)
    seen = {}
    layer4[0].conv1.register_forward_hook(lambda m, i, o: seen.update(l4=o.dtype))
    module.net.backbone.layer3[0].conv1.register_forward_hook(lambda m, i, o: seen.update(l3=o.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        module(torch.ones(2, 1, 16, 20, 16, dtype=torch.uint8))
    assert seen == {"l3": torch.bfloat16, "l4": torch.float32}


def test_bf16_channels_last_training_runs(tmp_path, tiny):
    cohort, scores = tiny
    out = train_run(tmp_path / "bf16", cohort, scores, outputs=["score_a"],
                    overrides={"max_epochs": 1, "batch_size": 8, "precision": "bf16-mixed",
                               "channels_last": True, "mixup_alpha": 0.4, "early_stopping_patience": 2},
                    tensorboard=True, verbose=False)
    assert list((out / "logs" / "tensorboard" / "multi").glob("events.out.tfevents.*"))
    m = json.loads((out / "metrics.json").read_text())
    assert m["training"]["multi"]["skipped_steps"] == 0
    assert np.isfinite(pd.read_csv(out / "predictions.csv").score_a_pred).all()


def test_cohort_cache_round_trip(multi_run, tiny):
    cohort, _ = tiny
    saved = LesionCohort.load(multi_run / "cohort.lesions.npz")
    assert saved.subject_ids == cohort.subject_ids and np.array_equal(saved.data, cohort.data)


def test_pretrained_weights_are_the_starting_point(tmp_path, tiny):
    """A MedicalNet checkpoint sets the backbone: after one epoch at a negligible learning rate
    the trained first convolution still equals the checkpoint's, and differs without it."""
    from deeplsm.models import build_resnet10_3d

    torch.manual_seed(123)
    src = build_resnet10_3d()
    with torch.no_grad():
        for p in src.parameters():
            p.normal_(0.0, 0.05)
    ckpt = tmp_path / "resnet_10.pth"  # MedicalNet's layout: DataParallel "module." names
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, ckpt)
    module = LSMModule([{"name": "a"}], weights=str(ckpt))
    assert torch.equal(module.net.backbone.conv1.weight, src.conv1.weight)
    assert not torch.allclose(LSMModule([{"name": "a"}]).net.backbone.conv1.weight, src.conv1.weight)

    cohort, scores = tiny
    runs = {}
    for name, weights in (("pretrained", ckpt), ("scratch", None)):
        out = tmp_path / name
        train_run(out, cohort, scores, outputs=["score_a"], mode="multi", seed=0, weights=weights,
                  overrides={"max_epochs": 1, "batch_size": 8, "lr": 1e-12, "weight_decay": 0.0},
                  verbose=False)
        runs[name] = load_trained(out).models["multi"].backbone
    torch.testing.assert_close(runs["pretrained"].conv1.weight, src.conv1.weight, rtol=0, atol=1e-8)
    torch.testing.assert_close(runs["pretrained"].layer4[0].conv1.weight, src.layer4[0].conv1.weight,
                               rtol=0, atol=1e-8)
    assert (runs["scratch"].conv1.weight - src.conv1.weight).abs().max() > 0.01
