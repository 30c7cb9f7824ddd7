"""The study settings schema: every key typed and ranged, one line per bad value, at the door."""

from __future__ import annotations

import numpy as np
import pytest

from deeplsm.cli import main
from deeplsm.cohort import PAPER_VOXEL_SIZE, mni_brain_grid
from deeplsm.exceptions import DeepLSMError
from deeplsm.study import DEFAULTS, Study, demo_config, load_config, make_config, run_study
from tests.conftest import write_nifti


# The late or traceback-producing settings of issue 11 item 4, each now one line at the door.
@pytest.mark.parametrize(("settings", "message"), [
    ({"cohort": {"n_subjects": "sixty"}}, "cohort.n_subjects = 'sixty': must be an integer >= 10"),
    ({"cohort": {"n_subjects": 5}}, "cohort.n_subjects = 5: must be an integer >= 10"),
    ({"scores": {"n_rois": "2"}}, "scores.n_rois = '2': must be an integer >= 1"),
    ({"scores": {"n_rois": 1.5}}, "scores.n_rois = 1.5: must be an integer >= 1"),
    ({"scores": {"n_rois": True}}, "scores.n_rois = True: must be an integer >= 1"),
    ({"models": {"overrides": {"max_epochs": -1}}},
     "models.overrides.max_epochs = -1: must be an integer >= 1"),
    ({"models": {"overrides": {"max_epochs": "one"}}},
     "models.overrides.max_epochs = 'one': must be an integer >= 1"),
    ({"models": {"overrides": {"max_epochs": 0}}},
     "models.overrides.max_epochs = 0: must be an integer >= 1"),
    ({"models": {"single_overrides": {"batch_size": 0}}},
     "models.single_overrides.batch_size = 0: must be an integer >= 1"),
    ({"models": {"overrides": {"lr": -1}}}, "models.overrides.lr = -1: must be a number > 0"),
    ({"models": {"overrides": {"lr": None}}}, "models.overrides.lr = None: must be a number > 0"),
    ({"models": {"overrides": {"precision": "64"}}},
     "models.overrides.precision = '64': must be one of '32-true', 'bf16-mixed', '16-mixed'"),
    ({"classical": {"permutations": -5}}, "classical.permutations = -5: must be an integer >= 0"),
    ({"explain": {"max_subjects": 0}}, "explain.max_subjects = 0: must be an integer >= 1, or None"),
    ({"explain": {"window": 0}},
     "explain.window = 0: must be an integer >= 1 (voxels) or a length in mm such as '12mm'"),
    ({"explain": {"stride": "2"}},
     "explain.stride = '2': must be an integer >= 1 (voxels) or a length in mm such as '12mm'"),
    ({"explain": {"occlusion_positive": 1}}, "explain.occlusion_positive = 1: must be true or false"),
    ({"cohort": {"voxel_size": 0}}, "cohort.voxel_size = 0: must be a number > 0, or None"),
    ({"cohort": {"threshold": 1.5}}, "cohort.threshold = 1.5: must be a number > 0 and <= 1, or None"),
    ({"scores": {"noise": -0.1}}, "scores.noise = -0.1: must be a number >= 0"),
    ({"classical": {"min_subjects": 1.5}},
     "classical.min_subjects = 1.5: must be an integer >= 1, or a number > 0 and < 1"),
    ({"models": {"seed": -1}}, "models.seed = -1: must be an integer from 0 to 4294967295"),
    ({"models": {"modes": ["multi", "dual"]}}, "models.modes[1] = 'dual': must be one of 'multi', 'single'"),
    ({"classical": {"methods": ["vlsm", "lasso"]}},
     "classical.methods[1] = 'lasso': must be one of 'vlsm', 'svr'"),
    ({"classical": {"vlsm_test": "anova"}},
     "classical.vlsm_test = 'anova': must be one of 't', 'welch', 'bm', 'regression', 'liebermeister'"),
    ({"cohort": {"grid": "native"}},
     "cohort.grid = 'native': a synthetic cohort has no native grid"),
    ({"classical": {"volume_correction": "dtlvc"}},
     "classical: volume_correction='dtlvc' makes the lesion predictor continuous; it needs "
     "test='regression'"),
    ({"scores": {"weights": [[1, 0.5]]}}, "scores.weights = [[1.0, 0.5]]: must be one row per score, "
     "each of n_rois = 3 numbers >= 0"),
    ({"models": {"epochs": 3}}, "unknown setting models.epochs; known: modes, preset"),
    ({"models": {"overrides": {"momentum": 0.9}}}, "unknown setting models.overrides.momentum; known: "
     "optimizer, lr"),
    ({"cohort": 3}, "cohort = 3: must be a table of settings"),
])
def test_bad_setting_is_one_line(settings, message):
    with pytest.raises(DeepLSMError) as err:
        make_config(settings)
    text = str(err.value)
    assert text.startswith(message), text
    assert "\n" not in text


@pytest.mark.parametrize(("section", "key"), [(s, k) for s, keys in DEFAULTS.items() for k in keys])
def test_every_key_is_typed(section, key):
    """No setting takes anything: a value of the wrong type is an error naming that key."""
    with pytest.raises(DeepLSMError, match=rf"^{section}\.{key} = "):
        make_config({section: {key: object()}})


def test_defaults_and_demo_configs_pass_through_unchanged():
    for cfg in (make_config(), demo_config(), demo_config(quick=True), demo_config(preset="paper")):
        assert make_config(cfg) == cfg
    assert make_config() == DEFAULTS
    cfg = make_config({"models": {"modes": "multi", "overrides": {"max_epochs": 2}},
                       "explain": {"window": "13MM"}})
    assert cfg["models"]["modes"] == ["multi"]
    assert cfg["models"]["overrides"] == {"max_epochs": 2}  # only what was given
    assert cfg["explain"]["window"] == "13mm"
    assert cfg["models"]["single_overrides"] == {}


def test_toml_errors_through_the_cli_leave_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    for body, message in (
        ('[cohort]\nn_subjects = "sixty"\n', "cohort.n_subjects = 'sixty': must be an integer >= 10"),
        ("[models]\noverrides = { max_epochs = 0 }\n",
         "models.overrides.max_epochs = 0: must be an integer >= 1"),
        ("[classical]\npermutations = -5\n", "classical.permutations = -5: must be an integer >= 0"),
        ("[explain]\nwindow = 0\n", "explain.window = 0: must be an integer >= 1"),
        ("[scores]\nroi_size = 100\n", "scores.roi_size = 100: the cube side must be from 1 to "),
    ):
        cfg = tmp_path / "s.toml"
        cfg.write_text(body)
        assert main(["study", "--config", str(cfg), "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"deeplsm: error: {message}"), err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert not out.exists()


def test_a_dict_edited_after_make_config_is_checked_before_any_stage(tmp_path):
    cfg = demo_config(quick=True)
    cfg["classical"]["permutations"] = -5
    with pytest.raises(DeepLSMError, match=r"^classical\.permutations = -5: must be an integer >= 0$"):
        run_study(cfg, tmp_path / "out", verbose=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("settings", "match"), [
    ({"scores": {"roi_size": 100}}, r"scores\.roi_size = 100: the cube side must be from 1 to {limit} "
     r"voxels, smaller than the {grid} analysis grid"),
    ({"scores": {"roi_size_mm": 400.0}}, r"scores\.roi_size_mm = 400\.0: 121 voxels; the cube side must "
     r"be from 1 to {limit} voxels"),
    ({"explain": {"window": 60, "stride": 2}}, r"explain\.window = 60, explain\.stride = 2: occlusion "
     r"window 60 exceeds the volume size"),
    ({"explain": {"window": 2, "stride": 3}}, r"explain\.window = 2, explain\.stride = 3: occlusion "
     r"stride 3 is larger than the window 2"),
])
def test_grid_checks_run_before_any_stage_for_a_synthetic_cohort(tmp_path, settings, match):
    grid = mni_brain_grid(3.3)
    limit, shape = min(grid.shape) - 1, "x".join(map(str, grid.shape))
    with pytest.raises(DeepLSMError, match=match.format(limit=limit, grid=shape)):
        run_study(make_config(settings), tmp_path / "out", verbose=False)
    assert not (tmp_path / "out").exists()


def test_grid_checks_run_after_the_cohort_and_before_training_for_own_lesions(tmp_path, rng):
    folder = tmp_path / "lesions"
    folder.mkdir()
    for i in range(12):
        write_nifti(folder / f"sub-{i:02d}_lesion.nii.gz", (rng.random((7, 8, 9)) < 0.3).astype(np.uint8))
    cfg = make_config({"cohort": {"source": str(folder), "grid": "native"},
                       "scores": {"roi_size": 7}})
    assert cfg["cohort"]["voxel_size"] is None  # grid = "native" alone keeps the lesions' voxels
    with pytest.raises(DeepLSMError, match=r"scores\.roi_size = 7: the cube side must be from 1 to 6 "
                       r"voxels, smaller than the 7x8x9 analysis grid"):
        run_study(cfg, tmp_path / "out", verbose=False)
    assert (tmp_path / "out" / "stages" / "cohort.json").exists()
    assert not (tmp_path / "out" / "stages" / "simulate.json").exists()
    assert not (tmp_path / "out" / "train").exists()


@pytest.mark.parametrize(("cohort", "voxel_size"), [
    ({"grid": "paper"}, PAPER_VOXEL_SIZE),
    ({"grid": "paper", "voxel_size": 5.0}, 5.0),
    ({"grid": "mni", "voxel_size": 4.0}, 4.0),
    ({"voxel_size": 6.0}, 6.0),
    ({}, 3.3),
])
def test_synthetic_cohort_honours_the_grid(tmp_path, monkeypatch, cohort, voxel_size):
    import deeplsm.synthetic

    seen = {}

    def fake(n, *, grid=None, voxel_size=None, random_state=None, verbose=True):
        seen["grid"] = grid
        raise KeyboardInterrupt  # stop here: only the grid handed to the generator matters

    monkeypatch.setattr(deeplsm.synthetic, "make_wmh_cohort", fake)
    with pytest.raises(KeyboardInterrupt):
        Study(make_config({"cohort": {"n_subjects": 10, **cohort}}), tmp_path, verbose=False).run()
    expected = mni_brain_grid(voxel_size)
    assert seen["grid"] == expected
    assert seen["grid"].voxel_size == pytest.approx((voxel_size,) * 3)
    if voxel_size == PAPER_VOXEL_SIZE:
        assert seen["grid"].shape == (87, 109, 93)  # the paper's grid, as the README states


def test_example_toml_paper_grid_line(tmp_path):
    """Uncommenting ``grid = "paper"`` in a file without voxel_size gives the paper's grid."""
    p = tmp_path / "s.toml"
    p.write_text('[cohort]\ngrid = "paper"\n')
    assert load_config(p)["cohort"]["voxel_size"] is None
    p.write_text('[cohort]\ngrid = "mni"\nvoxel_size = "4"\n')
    with pytest.raises(DeepLSMError, match=r"cohort\.voxel_size = '4': must be a number > 0, or None"):
        load_config(p)
