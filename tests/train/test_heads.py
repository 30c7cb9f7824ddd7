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
