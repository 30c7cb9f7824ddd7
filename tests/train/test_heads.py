"""Training with a feature-map head: recorded in config.json, rebuilt by load_trained, clamped."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from deeplsm.models import SpatialReadoutHead, TaskSpec, build_net
from deeplsm.train import LSMModule, load_trained, train_run
from deeplsm.train._run import read_learning_curves

HEAD = {"head": "spatial", "head_stage": 2, "output01": "linear", "readout_l1": 1e-3}


@pytest.fixture(scope="module")
def spatial_run(tmp_path_factory, tiny):
    cohort, scores = tiny
    out = tmp_path_factory.mktemp("runs") / "spatial"
    train_run(out, cohort, scores, outputs=["score_a", "score_b"], seed=1,
              overrides={"max_epochs": 3, "batch_size": 8, **HEAD}, verbose=False)
    return out


def test_head_is_recorded_and_rebuilt(spatial_run, tiny):
    cohort, _ = tiny
    cfg = json.loads((spatial_run / "config.json").read_text())
    assert {k: cfg["hyperparameters"][k] for k in HEAD} == HEAD
    net = load_trained(spatial_run).models["multi"]
    assert isinstance(net.head, SpatialReadoutHead) and net.head.output01 == "linear"
    assert net.head.feature_shape == (2, 3, 2)  # 16x20x16 halved four times, rounding up
    # The checkpoint's weights, loaded into a net built independently with the same options.
    state = torch.load(spatial_run / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    ref = build_net(TaskSpec(cfg["outputs"]), **HEAD, input_shape=cohort.shape)
    ref.load_state_dict({k.removeprefix("net."): v for k, v in state.items()})
    x = torch.from_numpy(cohort.data[:, None]).float()
    with torch.no_grad():
        out, want = net(x).numpy(), ref.eval()(x).numpy()
    np.testing.assert_allclose(out, want, atol=1e-6)
    # Predictions are the linear outputs clamped to [0, 1]; the network itself is not clamped.
    preds = pd.read_csv(spatial_run / "predictions.csv")
    np.testing.assert_allclose(preds.score_a_pred, np.clip(out[:, 0], 0, 1), atol=1e-6)
    np.testing.assert_allclose(preds.score_b_pred, np.clip(out[:, 1], 0, 1), atol=1e-6)


def test_spatial_run_learns(spatial_run):
    curves = read_learning_curves(spatial_run, "multi")
    assert len(curves) == 3 and curves.train_loss.iloc[-1] < curves.train_loss.iloc[0]


def test_readout_penalty_is_part_of_the_training_loss(tiny):
    cohort, scores = tiny
    x = torch.from_numpy(cohort.data[:8, None])
    y = torch.tensor(scores[["score_a"]].to_numpy(np.float32)[:8])
    totals = {}
    for l1 in (0.0, 10.0):
        torch.manual_seed(0)
        module = LSMModule([{"name": "score_a"}], **{**HEAD, "readout_l1": l1}, input_shape=cohort.shape)
        module.log = lambda *a, **k: None  # no trainer attached
        totals[l1] = module.training_step((x, y), 0).item()
        data_loss = module.losses(module.net.logits(x.float()), y)[0].item()
    assert totals[0.0] == pytest.approx(data_loss, rel=1e-5)
    assert totals[10.0] - totals[0.0] == pytest.approx(module.net.head.penalty().item(), rel=1e-4)
    assert module.net.head.penalty().item() > 0


def test_bf16_with_a_cut_backbone(tmp_path, tiny):
    cohort, scores = tiny
    out = train_run(tmp_path / "bf16", cohort, scores, outputs=["score_a"],
                    overrides={"max_epochs": 1, "batch_size": 8, "precision": "bf16-mixed", **HEAD},
                    verbose=False)
    assert np.isfinite(pd.read_csv(out / "predictions.csv").score_a_pred).all()


def test_readout_preset_trains_predicts_and_explains(tmp_path, tiny):
    """The `readout` preset end to end: stem readout, clamped predictions, captum through it."""
    from deeplsm.explain import IntegratedGradientsMap, explain_run
    from deeplsm.train import get_preset

    hp = get_preset("readout")
    assert (hp["head"], hp["head_stage"], hp["no_max_pool"]) == ("spatial", 0, True)
    assert hp["subtract_empty"] and hp["readout_positive"] and hp["output01"] == "linear"
    cohort, scores = tiny
    out = train_run(tmp_path / "ro", cohort, scores, outputs=["score_a", "score_b"], preset="readout",
                    overrides={"max_epochs": 2, "batch_size": 8}, verbose=False)
    run = load_trained(out)
    net, col = run.model_for("score_b")
    assert isinstance(net.head, SpatialReadoutHead) and net.subtract_empty
    assert net.head.feature_shape == (8, 10, 8)  # the stem's stride 2, no max-pool
    preds = pd.read_csv(out / "predictions.csv")
    assert preds[["score_a_pred", "score_b_pred"]].to_numpy().min() >= 0
    assert preds[["score_a_pred", "score_b_pred"]].to_numpy().max() <= 1
    x = torch.from_numpy(cohort.data[:2, None]).float()
    att = IntegratedGradientsMap(net).attribute(x, target=col, n_steps=8)
    with torch.no_grad():
        delta = net(x)[:, col] - net(torch.zeros_like(x))[:, col]
    # Completeness: the attributions of the readout net add up to f(x) - f(0).
    np.testing.assert_allclose(att.sum((1, 2, 3, 4)).numpy(), delta.numpy(), rtol=0.05, atol=1e-4)
    paths = explain_run(out, methods=("occlusion", "ig"), subjects="trainval", window=2, stride=2,
                        n_steps=4, verbose=False)
    assert set(paths["occlusion"]) == {"score_a", "score_b"}


def test_bias_init_mean_starts_each_score_at_its_training_mean(tmp_path, tiny):
    """``bias_init = "mean"``: an empty map predicts the training mean from the first step (a
    lower-is-worse accuracy near 1 need not travel there from 0); "zero" (default) keeps 0."""
    from deeplsm.train._module import init_output_bias

    cohort, scores = tiny
    ro = {"head": "spatial", "head_stage": 0, "no_max_pool": True, "subtract_empty": True,
          "output01": "linear", "readout_positive": True}
    empty = torch.zeros((1, 1, *cohort.shape))
    torch.manual_seed(0)
    module = LSMModule([{"name": "a"}, {"name": "b"}], **ro, input_shape=cohort.shape,
                       target_means=[0.9, 0.25])
    with torch.no_grad():
        np.testing.assert_allclose(module.net(empty).numpy(), [[0.9, 0.25]], atol=1e-6)
    torch.manual_seed(0)
    module = LSMModule([{"name": "a"}, {"name": "b"}], **ro, input_shape=cohort.shape)
    with torch.no_grad():
        np.testing.assert_allclose(module.net(empty).numpy(), [[0.0, 0.0]], atol=1e-6)
    # not for a sigmoid output (its bias is a logit) or the paper's MLP head
    sig = build_net(TaskSpec([{"name": "a"}]), **{**ro, "output01": "sigmoid"}, input_shape=cohort.shape)
    assert not init_output_bias(sig.head, sig.head.task, [0.9], "sigmoid")
    # through train_run: recorded, and the first epoch starts from the mean of the training targets
    s = scores.assign(score_a=1.0 - 0.1 * scores["score_a"])  # near 1 for most subjects
    runs = {}
    for init in ("zero", "mean"):
        runs[init] = train_run(tmp_path / init, cohort, s, outputs=["score_a"], preset="readout", seed=0,
                               overrides={"max_epochs": 1, "batch_size": 8, "lr": 1e-4, "bias_init": init},
                               verbose=False)
    cfg = json.loads((runs["mean"] / "config.json").read_text())
    assert cfg["hyperparameters"]["bias_init"] == "mean"
    split = pd.read_csv(runs["mean"] / "split.csv", index_col=0)["split"]
    mean = s.loc[split[split == "train"].index, "score_a"].mean()
    err = {k: abs(pd.read_csv(r / "predictions.csv")["score_a_pred"].mean() - mean) for k, r in runs.items()}
    assert err["mean"] < 0.05 < err["zero"], err
