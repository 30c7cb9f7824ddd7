"""The study's repeated k-fold cross-validation (``models.folds``, ``models.repeats``).

Every predictor — the CNNs of ``models.modes`` and the predictive classical methods (ridge,
SVR-LSM) of ``classical.methods`` — is fitted and tested on exactly the same folds: repeat ``r``
partitions the subjects with the seed ``models.seed + r`` (:func:`deeplsm.train.kfold_split`);
in fold ``f`` the test set is fold ``f``, the validation set the next fold and the training set
the others. The CNN trains on the training folds and keeps its best checkpoint on the
validation fold; ridge and SVR-LSM are fitted on training + validation folds, as in the
single-split study. Each (repeat, fold, model) is its own cached stage (``cv_r<r>_f<f>_<model>``),
so an interrupted cross-validation resumes where it stopped; the ``cv`` stage then writes::

    DIR/cv/repeat-<r>/fold-<f>/<model>/   CNN run folders (metrics.json, predictions.csv, ...) and
                                          ridge/SVR folders (predictions.csv, metrics.json)
    DIR/cv/splits.csv                     subject, repeat, fold: each subject's test fold
    DIR/cv/folds.csv                      tidy: repeat, fold, method, score, metric, value,
                                          n_train, n_test
    DIR/cv/summary.json                   cv.<method>.<score>.{r2_mean, r2_sd, R2_mean, R2_sd, ...}

The group maps and the localisation metrics stay those of the single main split.
"""

from __future__ import annotations

import gc
import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from deeplsm._outputs import is_deeplsm_dir, remove_output
from deeplsm._utils import atomic_path, package_versions, write_json
from deeplsm.exceptions import DeepLSMError
from deeplsm.study._config import ridge_params, svr_params

if TYPE_CHECKING:
    from deeplsm.study._run import Study

log = logging.getLogger("deeplsm")

#: The classical methods that predict scores (and so are cross-validated).
CV_CLASSICAL = ("ridge", "svr")


def cv_predictors(config: dict) -> list[str]:
    """The models cross-validated under ``config``: CNN modes, then ridge and SVR-LSM."""
    return [*config["models"]["modes"], *[m for m in CV_CLASSICAL if m in config["classical"]["methods"]]]


def fold_path(out: Path, repeat: int, fold: int, model: str) -> Path:
    return out / "cv" / f"repeat-{repeat}" / f"fold-{fold}" / model


def check_cv(config: dict, subject_ids: list[str]) -> None:
    """Too few subjects for ``models.folds`` is an error naming the key, before any training."""
    m = config["models"]
    if not m["folds"]:
        return
    from deeplsm.train import repeated_kfold_splits

    try:
        repeated_kfold_splits(subject_ids, m["folds"], 1, m["seed"])
    except DeepLSMError as err:
        raise DeepLSMError(f"models.folds = {m['folds']}: {err}") from None


def run_cv_stages(study: Study, k_sim: str) -> None:
    """One stage per (repeat, fold, model), then the ``cv`` summary stage."""
    from deeplsm.study._run import _key

    cfg = study.config
    m, c = cfg["models"], cfg["classical"]
    k, n_rep = m["folds"], m["repeats"]
    if not k:
        return
    model_cfg = {key: m[key] for key in ("preset", "seed", "overrides", "weights", "cv_checkpoints")}
    fold_keys = []
    for r in range(n_rep):
        for f in range(k):
            for model in cv_predictors(cfg):
                if model in ("multi", "single"):
                    extra = m["single_overrides"] if model == "single" else {}
                    key = _key("cv", model, r, f, k, k_sim, model_cfg, extra)
                    run = _train_fold
                else:
                    key = _key("cv", model, r, f, k, k_sim, _classical_params(model, c), c["seed"],
                               m["seed"])
                    run = _classical_fold
                rel = fold_path(Path("."), r, f, model).as_posix()
                study._stage(f"cv_r{r}_f{f}_{model}", key,
                             lambda run=run, mo=model, rr=r, ff=f: run(study, mo, rr, ff), [rel])
                fold_keys.append(key)
    study._stage("cv", _key("cv_summary", fold_keys), lambda: _summarise(study),
                 ["cv/folds.csv", "cv/summary.json", "cv/splits.csv"])


def _classical_params(method: str, c: dict) -> dict:
    """The estimator's parameters in a CV fold: no permutations (only predictions are needed)."""
    params = ridge_params(c) if method == "ridge" else svr_params(c)
    return {**params, "n_permutations": 0}


def _train_fold(study: Study, mode: str, repeat: int, fold: int) -> None:
    from deeplsm.train import resume_run, train_run

    m = study.config["models"]
    out = fold_path(study.out, repeat, fold, mode)
    if (out / "metrics.json").exists():
        remove_output(out)  # finished under another key: retrain
    if is_deeplsm_dir(out) and any(out.rglob("last.ckpt")):
        log.info("resuming %s from its last checkpoint", out)
        resume_run(out, device=m.get("device", "auto"), verbose=study.verbose)
    else:
        if out.exists():
            remove_output(out)
        overrides = {**m["overrides"], **(m["single_overrides"] if mode == "single" else {})}
        train_run(out, study.load_cohort(), study._scores(), mode=mode, preset=m["preset"],
                  seed=m["seed"] + repeat, n_folds=m["folds"], fold=fold,
                  overrides=overrides or None, weights=m["weights"],
                  device=m.get("device", "auto"), devices=m["devices"], strategy=m["strategy"],
                  threads=m["threads"], verbose=study.verbose,
                  sources={"lesions": str(study.cohort_path),
                           "scores": str(study.sim_dir / "scores.csv")})
    gc.collect()  # free the fold's trainer and module (reference cycles; see deeplsm.train._cv)
    # Finished: last.ckpt only served to resume; best.ckpt only if asked for (cv_checkpoints).
    patterns = ("last.ckpt",) if m["cv_checkpoints"] else ("last.ckpt", "best.ckpt")
    for pattern in patterns:
        for ckpt in out.rglob(pattern):
            ckpt.unlink()


def _classical_fold(study: Study, method: str, repeat: int, fold: int) -> None:
    """Fit ridge or SVR-LSM on the fold's training + validation subjects; predict its test fold."""
    from deeplsm.classical import SVRLSM, RidgeLSM
    from deeplsm.evaluate import regression_metrics
    from deeplsm.study._run import _volume_trend
    from deeplsm.train import kfold_split

    cfg = study.config
    c, m = cfg["classical"], cfg["models"]
    cohort = study.load_cohort()
    scores = study._scores().loc[cohort.subject_ids]
    split = kfold_split(cohort.subject_ids, m["folds"], fold, m["seed"] + repeat)
    fit_ids = [s for s in cohort.subject_ids if split[s] != "test"]
    test_ids = [s for s in cohort.subject_ids if split[s] == "test"]
    fit, test = cohort.subset(fit_ids), cohort.subset(test_ids)
    table = pd.DataFrame({"subject": test_ids, "split": "test"})
    metrics: dict[str, dict] = {}
    penalties: dict[str, dict] = {}
    exclusions = None
    for i, name in enumerate(scores.columns):
        y_fit = scores.loc[fit_ids, name].to_numpy()
        params = _classical_params(method, c)
        est = (RidgeLSM(**params, random_state=c["seed"] + i) if method == "ridge"
               else SVRLSM(**params, random_state=c["seed"] + i))
        with warnings.catch_warnings():  # a penalty on the grid's edge is recorded, not warned per fold
            warnings.filterwarnings("ignore", message=r"ridge: the cross-validated penalty")
            est.fit(fit, y_fit)
        if method == "ridge":
            penalties[name] = {"penalty": est.penalty_, "at_edge": est.at_edge_}
        pred = est.predict(test)
        if method == "svr" and est.volume_control_.behavior:  # SVR predicts the corrected score
            pred = pred + _volume_trend(fit, y_fit, test)
        y = scores.loc[test_ids, name].to_numpy()
        table[f"{name}_true"] = y
        table[f"{name}_pred"] = pred
        metrics[name] = regression_metrics(y, pred)
        exclusions = getattr(est, "exclusions_", None)
    counts = pd.Series(split).value_counts()
    with atomic_path(fold_path(study.out, repeat, fold, method), command="study") as tmp:
        tmp.mkdir(parents=True)
        table.to_csv(tmp / "predictions.csv", index=False, float_format="%.8g")
        write_json(tmp / "metrics.json", {
            "method": method, "repeat": repeat, "fold": fold, "fitted_on": "train+val",
            "n_subjects": {s: int(counts.get(s, 0)) for s in ("train", "val", "test")},
            "n_fitted": len(fit_ids), "test": metrics, "exclusions": exclusions,
            **({"ridge_penalty": penalties} if penalties else {})})


def _summarise(study: Study) -> None:
    from deeplsm.train import FOLD_COLUMNS, fold_rows, summarise_folds
    from deeplsm.train._cv import run_fold_rows, splits_table

    cfg = study.config
    m = cfg["models"]
    k, n_rep = m["folds"], m["repeats"]
    rows = []
    for r in range(n_rep):
        for f in range(k):
            for model in cv_predictors(cfg):
                folder = fold_path(study.out, r, f, model)
                if model in ("multi", "single"):
                    rows += run_fold_rows(folder, r, f, model)
                else:
                    res = json.loads((folder / "metrics.json").read_text())
                    rows += fold_rows(res["test"], r, f, model, n_train=res["n_fitted"],
                                      n_test=res["n_subjects"]["test"])
    table = pd.DataFrame(rows, columns=list(FOLD_COLUMNS))
    cohort = study.load_cohort()
    cv = study.out / "cv"
    with atomic_path(cv / "folds.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.8g")
    with atomic_path(cv / "splits.csv") as tmp:
        splits_table(cohort.subject_ids, k, n_rep, m["seed"]).to_csv(tmp, index=False)
    write_json(cv / "summary.json", {
        "key": study.keys.get("cv"), "n_folds": k, "n_repeats": n_rep, "seed": m["seed"],
        "n_subjects": cohort.n_subjects, "models": cv_predictors(cfg),
        "cv": summarise_folds(table), "versions": package_versions()})
