"""Training hyperparameters: one schema for the presets, ``train_run`` overrides and the CLI."""

from __future__ import annotations

import json

import lightning as L
import pytest

from deeplsm.cli import main
from deeplsm.exceptions import DeepLSMError
from deeplsm.train import PRESETS, get_preset, train_run
from deeplsm.train._presets import Hyperparameters


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_sets_every_hyperparameter_with_a_valid_value(name):
    hp = get_preset(name)
    assert Hyperparameters.model_validate(hp).model_dump() == hp


def test_none_is_an_override_where_the_hyperparameter_allows_it():
    assert PRESETS["fast"]["gradient_clip_val"] == 1.0
    hp = get_preset("fast", {"gradient_clip_val": None, "early_stopping_patience": None, "max_epochs": 3})
    assert hp["gradient_clip_val"] is None
    assert hp["early_stopping_patience"] is None
    assert hp["max_epochs"] == 3
    with pytest.raises(DeepLSMError, match=r"^lr = None: must be a number > 0$"):
        get_preset("fast", {"lr": None})


@pytest.mark.parametrize(("overrides", "message"), [
    ({"max_epochs": 0}, "max_epochs = 0: must be an integer >= 1"),
    ({"max_epochs": 1.5}, "max_epochs = 1.5: must be an integer >= 1"),
    ({"batch_size": "16"}, "batch_size = '16': must be an integer >= 1"),
    ({"lr": -1}, "lr = -1: must be a number > 0"),
    ({"mixup_alpha": -0.1}, "mixup_alpha = -0.1: must be a number >= 0"),
    ({"channels_last": "yes"}, "channels_last = 'yes': must be true or false"),
    ({"optimizer": "rmsprop"}, "optimizer = 'rmsprop': must be one of 'adam', 'adamw', 'sgd'"),
    ({"milestones": [100, -1]}, "milestones[1] = -1: must be an integer >= 0"),
    ({"momentum": 0.9}, "unknown hyperparameter momentum; known: optimizer, lr"),
])
def test_bad_overrides(overrides, message):
    with pytest.raises(DeepLSMError) as err:
        get_preset("paper", overrides)
    assert str(err.value).startswith(message)


def test_bad_override_leaves_no_partial_run(tmp_path, tiny):
    out = tmp_path / "run"
    with pytest.raises(DeepLSMError, match=r"^lr = -1: must be a number > 0$"):
        train_run(out, *tiny, overrides={"lr": -1, "max_epochs": 1})
    assert not out.exists()


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--lr", "-1", "argument --lr: must be a number > 0, got '-1'"),
    ("--lr", "nan", "argument --lr: must be a number > 0, got 'nan'"),
    ("--epochs", "0", "argument --epochs: must be an integer >= 1, got '0'"),
    ("--epochs", "1.5", "argument --epochs: must be an integer >= 1, got '1.5'"),
    ("--batch-size", "0", "argument --batch-size: must be an integer >= 1, got '0'"),
    ("--mixup", "-1", "argument --mixup: must be a number >= 0, got '-1'"),
    ("--seed", "-3", "argument --seed: must be an integer from 0 to 4294967295, got '-3'"),
])
def test_cli_numbers_use_the_hyperparameter_ranges(tmp_path, capsys, option, value, message):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        main(["train", "--lesions", "x", "--scores", "y", "--out", str(out), option, value])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_gradient_clipping_can_be_switched_off(tmp_path, tiny):
    """``gradient_clip_val = None`` reaches the Lightning Trainer (the preset clips at 1.0)."""
    seen = []

    class Probe(L.Callback):
        def on_train_start(self, trainer, module):
            seen.append(trainer.gradient_clip_val)

    cohort, scores = tiny
    for name, clip in (("clip", {}), ("noclip", {"gradient_clip_val": None})):
        out = train_run(tmp_path / name, cohort, scores, outputs=["score_a"], verbose=False,
                        overrides={"max_epochs": 1, "batch_size": 8, **clip}, callbacks=[Probe()])
        cfg = json.loads((out / "config.json").read_text())
        assert cfg["hyperparameters"]["gradient_clip_val"] == (None if clip else 1.0)
    assert seen == [1.0, None]
