"""Run a configured study end to end, stage by stage, with caching and resume.

Stages (each writes under ``DIR`` and records itself in ``DIR/stages/<stage>.json``):

1. ``cohort``      → ``DIR/cohort/cohort.lesions.npz``
2. ``simulate``    → ``DIR/simulation/{scores.csv, rois.nii.gz, simulation.json}``
3. ``train_multi`` / ``train_single`` → ``DIR/train/{multi,single}/`` (run directories)
4. ``explain_multi`` / ``explain_single`` → ``DIR/maps/{multi,single}/``
5. ``vlsm`` / ``svr`` / ``ridge`` → ``DIR/classical/<method>/`` (+ normalised maps in
   ``DIR/maps/classical``); SVR and ridge also predict the CNN's test subjects
   (``predictions.csv``, ``metrics.json``)
6. ``evaluate``    → ``DIR/evaluation.json`` (when the ROIs are known)
7. ``clusters``    → ``<map>_clusters.tsv`` next to every map in ``DIR/maps/`` (and, with an
   atlas, the relabelled tables of ``DIR/classical/``)
8. ``report``      → ``DIR/metrics.json``, ``DIR/report.html``, ``DIR/README.txt``

A stage is skipped when its record holds the same key: a hash of its own settings and of the
keys of the stages it reads, so changing a setting redoes that stage and everything downstream.
Training is resumable from its ``last.ckpt`` after a kill; every other stage writes to a
temporary folder and renames it, so an interrupted stage leaves nothing half-written.

A record also vouches for the stage's outputs: the size and SHA-256 of each file (size and
modification time for files over 64 MiB, such as checkpoints). An output that went missing or
changed, a truncated or empty record, or a damaged training checkpoint redoes that stage with a
warning instead of failing later. Temporary folders left by a killed run are removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from deeplsm._direction import DEFAULT_DIRECTION, deficit_tail, resolve_directions
from deeplsm._outputs import check_output_dir, clean_stale_temps, is_deeplsm_dir, remove_output, write_marker
from deeplsm._utils import atomic_path, package_versions, write_json
from deeplsm.cohort import LesionCohort, load_lesions, load_scores, write_scores
from deeplsm.exceptions import DeepLSMError
from deeplsm.study._config import (
    analysis_grid,
    check_grid,
    make_config,
    ridge_params,
    svr_params,
    vlsm_params,
)
from deeplsm.study._truth import check_truth_settings, image_labels, resolve_truth_labels

log = logging.getLogger("deeplsm")

STAGES = ("cohort", "simulate", "train_multi", "train_single", "explain_multi", "explain_single",
          "vlsm", "svr", "ridge", "evaluate", "clusters", "report")
#: What a study folder holds (its deeplsm marker owns these).
STUDY_LAYOUT = ("config.json", "stages", "cohort", "simulation", "train", "maps", "classical",
                "evaluation.json", "metrics.json", "report.html", "README.txt", "cv")
RECORD_FORMAT = 2
#: Files up to this size are vouched for by content hash, larger ones by size and mtime.
HASH_LIMIT = 64 * 2**20
#: Files a record does not vouch for: only needed to resume an interrupted stage (the benchmark
#: deletes them from finished cells to save disk).
RESUME_ONLY = ("last.ckpt",)


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Study:
    """One configured study in an output folder.

    Parameters
    ----------
    config : dict
        As returned by :func:`deeplsm.study.make_config` / :func:`load_config`; checked again
        here, so a bad value edited into the dict is still one error line before any work.
    out : path
        Output folder; created if needed. Rerunning in the same folder reuses finished stages.
    verbose : bool, default=True
        Progress bars and per-stage log lines.
    """

    def __init__(self, config: dict, out: str | os.PathLike, *, verbose: bool = True) -> None:
        self.config = make_config(config)
        self.out = Path(out)
        self.verbose = verbose
        self.keys: dict[str, str] = {}
        self.timings: dict[str, float] = {}
        self.skipped: list[str] = []
        self.ran: list[str] = []
        self._atlas = None
        self.truth_labels: dict[str, list[int]] | None = None
        #: score -> direction (``scores.direction`` resolved once the scores are known)
        self.directions: dict[str, str] = {}

    # --- stage bookkeeping ----------------------------------------------------------------
    def _record_path(self, name: str) -> Path:
        return self.out / "stages" / f"{name}.json"

    def _stage(self, name: str, key: str, fn: Callable[[], None], outputs: Sequence[str] = ()) -> None:
        """Run ``fn`` unless the stage's record holds ``key`` and its ``outputs`` are intact.

        ``outputs`` are paths relative to the study folder (files, folders, or glob patterns) that
        the record vouches for.
        """
        self.keys[name] = key
        rec_path = self._record_path(name)
        rec = self._read_record(rec_path)
        if rec is not None and rec.get("key") == key:
            damaged = self._damaged_output(rec)
            if damaged is None:
                self.timings[name] = float(rec.get("seconds", 0.0))
                self.skipped.append(name)
                log.info("stage %-14s cached (%.1f s when run)", name, self.timings[name])
                return
            warnings.warn(f"stage {name}: output {damaged} is missing or damaged; redoing the stage",
                          UserWarning, stacklevel=2)
            rec_path.unlink(missing_ok=True)
            self._discard(name)
        elif rec_path.exists():
            rec_path.unlink()
        log.info("stage %-14s running", name)
        t0 = time.perf_counter()
        fn()
        secs = time.perf_counter() - t0
        self.timings[name] = secs
        self.ran.append(name)
        write_json(rec_path, {"stage": name, "key": key, "seconds": round(secs, 3),
                              "format": RECORD_FORMAT, "outputs": self._fingerprint(outputs)})
        log.info("stage %-14s done in %.1f s", name, secs)

    @staticmethod
    def _read_record(path: Path) -> dict | None:
        """A stage record, or ``None`` when absent; a truncated or empty one counts as absent."""
        if not path.exists():
            return None
        try:
            rec = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            rec = None
        if not isinstance(rec, dict) or "key" not in rec:
            warnings.warn(f"{path} is damaged (truncated or empty); redoing that stage",
                          UserWarning, stacklevel=3)
            path.unlink()
            return None
        return rec

    def _fingerprint(self, outputs: Sequence[str]) -> dict[str, dict]:
        """``{relative path: {size, sha256 | mtime_ns}}`` of every file under ``outputs``."""
        files: dict[str, dict] = {}
        for pattern in outputs:
            for f in self._expand(pattern):
                if f.name in RESUME_ONLY:
                    continue
                st = f.stat()
                entry: dict = {"size": st.st_size}
                if st.st_size <= HASH_LIMIT:
                    entry["sha256"] = _sha256(f)
                else:
                    entry["mtime_ns"] = st.st_mtime_ns
                files[f.relative_to(self.out).as_posix()] = entry
        return files

    def _expand(self, pattern: str) -> list[Path]:
        paths = sorted(self.out.glob(pattern)) if any(c in pattern for c in "*?[") else [self.out / pattern]
        found = []
        for p in paths:
            if p.is_dir():
                found.extend(sorted(f for f in p.rglob("*") if f.is_file() and not _hidden(f, p)))
            elif p.is_file():
                found.append(p)
        return found

    def _damaged_output(self, rec: dict) -> str | None:
        """The first recorded output that is missing or differs, or ``None`` when all are intact.

        Records written before outputs were vouched for (no ``outputs`` entry) are trusted.
        """
        for rel, want in (rec.get("outputs") or {}).items():
            f = self.out / rel
            try:
                st = f.stat()
            except OSError:
                return rel
            if not f.is_file() or st.st_size != want.get("size"):
                return rel
            if "sha256" in want and _sha256(f) != want["sha256"]:
                return rel
            if "mtime_ns" in want and st.st_mtime_ns != want["mtime_ns"]:
                return rel
        return None

    def _discard(self, name: str) -> None:
        """Remove a damaged stage's outputs that cannot be replaced atomically (training)."""
        if name.startswith("train_"):
            remove_output(self.run_dir(name.removeprefix("train_")))

    # --- paths ----------------------------------------------------------------------------
    @property
    def cohort_path(self) -> Path:
        return self.out / "cohort" / "cohort.lesions.npz"

    @property
    def sim_dir(self) -> Path:
        return self.out / "simulation"

    def run_dir(self, mode: str) -> Path:
        return self.out / "train" / mode

    def maps_dir(self, mode: str) -> Path:
        return self.out / "maps" / mode

    @property
    def truth_path(self) -> Path | None:
        p = self.sim_dir / "rois.nii.gz"
        return p if p.exists() else None

    # --- the stages -----------------------------------------------------------------------
    def run(self) -> dict:
        """Run every stage (reusing finished ones); return the ``metrics.json`` content."""
        from deeplsm._device import resolve_device

        cfg = self.config
        grid = analysis_grid(cfg["cohort"])
        if grid is not None:  # known from the settings: check before any stage runs
            check_grid(cfg, grid)
        check_output_dir(self.out, resume=True, what="study folder")
        for sec in ("models", "explain"):  # a missing GPU is an error before any work
            resolve_device(cfg[sec].get("device", "auto"), what=f"{sec}.device")
        self._atlas = self.atlas()  # a bad atlas fails now, not after training
        check_truth_settings(cfg["scores"])  # which labels are which score's truth, by name
        self.out.mkdir(parents=True, exist_ok=True)
        write_marker(self.out, owns=STUDY_LAYOUT, command="study")
        clean_stale_temps(self.out, recursive=True)
        write_json(self.out / "config.json", cfg)
        k_cohort = _key("cohort", cfg["cohort"])
        self._stage("cohort", k_cohort, self._make_cohort, ["cohort/cohort.lesions.npz"])
        if grid is None:  # the lesions' own grid: check before anything is trained
            check_grid(cfg, self.load_cohort().grid)
        # truth_labels and the direction change how maps are read, not the scores: the later
        # stages' keys hold them
        k_sim = _key("simulate", k_cohort, {k: v for k, v in cfg["scores"].items()
                                            if k not in ("truth_labels", "direction")})
        self._stage("simulate", k_sim, self._make_scores, ["simulation"])
        self.truth_labels = self._resolve_truth()  # labels lost on the analysis grid: now
        self.directions = resolve_directions(cfg["scores"]["direction"], self._scores().columns,
                                             what="scores.direction")
        # Keys change with the directions only where they differ from the default, so that
        # studies run before directions existed keep their finished stages.
        turned = [self.directions] if any(d != DEFAULT_DIRECTION for d in self.directions.values()) else []
        if cfg["models"]["folds"]:  # too few subjects for the folds: an error before any training
            from deeplsm.study._cv import check_cv

            check_cv(cfg, self.load_cohort().subject_ids)
        model_cfg = {k: cfg["models"][k] for k in ("preset", "seed", "overrides", "weights")}
        for mode in cfg["models"]["modes"]:
            extra = cfg["models"]["single_overrides"] if mode == "single" else {}
            k_train = _key("train", mode, k_sim, model_cfg, extra)
            self._stage(f"train_{mode}", k_train, lambda m=mode: self._train(m), [f"train/{mode}"])
            # where the maps are computed does not change them (beyond float rounding)
            k_expl = _key("explain", k_train, {k: v for k, v in cfg["explain"].items() if k != "device"},
                          *turned)
            self._stage(f"explain_{mode}", k_expl, lambda m=mode: self._explain(m), [f"maps/{mode}"])
        cls_cfg = {k: v for k, v in cfg["classical"].items() if k != "tail"}
        if cfg["classical"]["tail"] != "two-sided":
            cls_cfg["tail"] = cfg["classical"]["tail"]
        for method in cfg["classical"]["methods"]:
            k_cls = _key(method, k_sim, cls_cfg, cfg["models"]["seed"], *turned)
            self._stage(method, k_cls, lambda m=method: self._classical(m),
                        [f"classical/{method}", f"maps/classical/{method}_*.nii.gz"])
        upstream = [self.keys[s] for s in STAGES if s in self.keys]
        if self.truth_path is not None:
            from deeplsm.evaluate import METRICS_VERSION

            self._stage("evaluate", _key("evaluate", upstream, METRICS_VERSION, self.truth_labels),
                        self._evaluate, ["evaluation.json"])
        else:  # no ground truth in this run: an earlier run's evaluation must not linger
            for stale in (self.out / "evaluation.json", self._record_path("evaluate")):
                stale.unlink(missing_ok=True)
        maps_keys = [self.keys[s] for s in STAGES
                     if s in self.keys and (s.startswith("explain") or s in ("vlsm", "svr", "ridge"))]
        self._stage("clusters", _key("clusters", maps_keys, cfg["report"]), self._clusters)
        from deeplsm.study._cv import run_cv_stages

        run_cv_stages(self, k_sim)  # models.folds: repeated k-fold CV (deeplsm.study._cv)
        # The report is cheap and always rewritten, so timings include every stage.
        t0 = time.perf_counter()
        metrics = self._report()
        self.timings["report"] = time.perf_counter() - t0
        metrics["timings_s"] = {k: round(v, 2) for k, v in self.timings.items()}
        write_json(self.out / "metrics.json", metrics)
        return metrics

    def load_cohort(self) -> LesionCohort:
        """The study's analysis-grid cohort (from the ``cohort`` stage's cache)."""
        return LesionCohort.load(self.cohort_path)

    def _make_cohort(self) -> None:
        c = self.config["cohort"]
        if c["source"] == "synthetic":
            from deeplsm.synthetic import make_wmh_cohort

            cohort = make_wmh_cohort(c["n_subjects"], grid=analysis_grid(c),
                                     random_state=c["seed"], verbose=self.verbose)
        else:
            cohort = load_lesions(c["source"], grid=c["grid"], voxel_size=c["voxel_size"],
                                  threshold=c["threshold"], verbose=self.verbose)
        self.cohort_path.parent.mkdir(parents=True, exist_ok=True)
        cohort.save(self.cohort_path)

    def _make_scores(self) -> None:
        from deeplsm.simulate import simulate

        s = self.config["scores"]
        cohort = self.load_cohort()
        with atomic_path(self.sim_dir) as tmp:
            tmp.mkdir()
            if s["source"] == "simulate":
                sim = simulate(cohort, scenario=s["scenario"], n_rois=s["n_rois"], roi_size=s["roi_size"],
                               roi_size_mm=s["roi_size_mm"], min_patients=s["min_patients"],
                               weights=None if s["weights"] is None else np.asarray(s["weights"]),
                               noise=s["noise"], volume_weight=s["volume_weight"],
                               random_state=s["seed"])
                write_scores(tmp / "scores.csv", cohort.subject_ids, sim.scores, sim.score_names)
                cohort.to_img(sim.labels, dtype=np.int16).to_filename(tmp / "rois.nii.gz")
                write_json(tmp / "simulation.json", {**sim.to_json(), "grid": cohort.grid.to_dict()})
            else:
                df = load_scores(s["source"], cohort.subject_ids, s["columns"])
                write_scores(tmp / "scores.csv", cohort.subject_ids, df.to_numpy(), list(df.columns))
                # for metrics.json "exclusions": the score rows without a lesion map
                write_json(tmp / "exclusions.json",
                           {"score_rows_without_lesion_map": df.attrs.get("rows_without_lesion_map", [])})
                if s["truth"]:
                    _copy_truth(s["truth"], cohort, tmp / "rois.nii.gz")

    def _scores(self) -> pd.DataFrame:
        return load_scores(self.sim_dir / "scores.csv")

    def _train(self, mode: str) -> None:
        from deeplsm.train import resume_run, train_run

        m = self.config["models"]
        out = self.run_dir(mode)
        if (out / "metrics.json").exists():
            remove_output(out)  # finished under another key: retrain
        if is_deeplsm_dir(out) and any(out.rglob("last.ckpt")):
            log.info("resuming %s from its last checkpoint", out)
            resume_run(out, device=m.get("device", "auto"), verbose=self.verbose)
            return
        if out.exists():
            remove_output(out)
        overrides = {**m["overrides"], **(m["single_overrides"] if mode == "single" else {})}
        train_run(out, self.load_cohort(), self._scores(), mode=mode, preset=m["preset"],
                  seed=m["seed"], overrides=overrides or None, weights=m["weights"],
                  device=m.get("device", "auto"), devices=m["devices"], strategy=m["strategy"],
                  threads=m["threads"],
                  verbose=self.verbose,
                  sources={"lesions": str(self.cohort_path),
                           "scores": str(self.sim_dir / "scores.csv")})

    def _explain(self, mode: str) -> None:
        from deeplsm.explain import explain_run

        e = self.config["explain"]
        with atomic_path(self.maps_dir(mode)) as tmp:
            explain_run(self.run_dir(mode), methods=e["methods"], subjects=e["subjects"],
                        window=e["window"], stride=e["stride"],
                        occlusion_positive=e["occlusion_positive"], direction=self.directions,
                        out_dir=tmp,
                        max_subjects=e["max_subjects"], device=e.get("device", "auto"),
                        verbose=self.verbose,
                        n_steps=e["n_steps"], internal_batch_size=e["internal_batch_size"],
                        n_samples=e["n_samples"], nt_samples=e["nt_samples"], stdevs=e["stdevs"],
                        random_state=e["seed"])

    def split(self, cohort: LesionCohort) -> dict[str, str]:
        """The CNN's train/val/test split of ``cohort`` (subject -> split)."""
        from deeplsm.train import split_subjects

        return split_subjects(cohort.subject_ids, random_state=self.config["models"]["seed"])

    def classical_subjects(self, cohort: LesionCohort) -> list[str]:
        """Subjects the classical methods see: the CNN's train + validation subjects, or all."""
        c = self.config["classical"]
        if c["subjects"] == "all":
            return list(cohort.subject_ids)
        split = self.split(cohort)
        return [s for s in cohort.subject_ids if split[s] != "test"]

    def _classical(self, method: str) -> None:
        from deeplsm.classical import SVRLSM, MassUnivariateLSM, RidgeLSM, save_fitted_maps

        c = self.config["classical"]
        cohort = self.load_cohort()
        ids = self.classical_subjects(cohort)
        sub = cohort.subset(ids)
        scores = self._scores().loc[ids]
        fitted = {}
        for i, name in enumerate(scores.columns):
            # one-sided: the permutation test looks only at the deficit's side of the statistic
            tail = deficit_tail(self.directions[name]) if c["tail"] == "one-sided" else "two-sided"
            if method == "vlsm":
                est = MassUnivariateLSM(**vlsm_params(c), tail=tail, random_state=c["seed"] + i,
                                        verbose=self.verbose)
            elif method == "ridge":
                est = RidgeLSM(**ridge_params(c), tail=tail, random_state=c["seed"] + i)
            else:
                est = SVRLSM(**svr_params(c), tail=tail, random_state=c["seed"] + i)
            fitted[name] = est.fit(sub, scores[name].to_numpy())
        save_fitted_maps(self.out / "classical" / method, sub, fitted, method,
                         config={**c, "subjects_used": len(ids)}, directions=self.directions)
        if method in ("svr", "ridge"):
            self._classical_predictions(method, cohort, sub, fitted)
        # Turned by the score's direction (positive t / beta: lesioned subjects score higher),
        # positive part, normalised: scored like the CNN maps (high = damage worsens the deficit).
        from deeplsm.explain import normalise_map

        maps = self.out / "maps" / "classical"
        maps.mkdir(parents=True, exist_ok=True)
        write_marker(maps, owns=("*.nii.gz", "*_clusters.tsv", "*_clusters.json"), command="study")
        for name, est in fitted.items():
            stat = np.asarray(est.statistic_img_.dataobj, dtype=np.float64)
            with atomic_path(maps / f"{method}_{name}.nii.gz") as tmp:
                cohort.to_img(normalise_map(stat, positive=True, direction=self.directions[name]),
                              np.float32).to_filename(tmp)

    def _classical_predictions(self, method: str, cohort: LesionCohort, sub: LesionCohort,
                               fitted: dict) -> None:
        """Predict every subject with models fitted on the CNN's train + validation subjects; write
        ``predictions.csv`` (as a CNN run's) and the test-split metrics (as a CNN run's ``metrics.json``).

        Skipped when the classical methods saw every subject: the test split would be in-sample.
        """
        from deeplsm.evaluate import regression_metrics

        if self.config["classical"]["subjects"] == "all":
            log.info("%s: fitted on all subjects, so no held-out prediction is reported", method)
            return
        split = self.split(cohort)
        scores = self._scores().loc[cohort.subject_ids]
        table = pd.DataFrame({"subject": cohort.subject_ids,
                              "split": [split[s] for s in cohort.subject_ids]})
        test = (table["split"] == "test").to_numpy()
        metrics: dict[str, dict] = {}
        for name, est in fitted.items():
            pred = est.predict(cohort)
            if method == "svr" and est.volume_control_.behavior:
                pred = pred + _volume_trend(sub, scores.loc[sub.subject_ids, name].to_numpy(), cohort)
            y = scores[name].to_numpy()
            table[f"{name}_true"] = y
            table[f"{name}_pred"] = pred
            metrics[name] = regression_metrics(y[test], pred[test])
        folder = self.out / "classical" / method
        with atomic_path(folder / "predictions.csv") as tmp:
            table.to_csv(tmp, index=False)
        counts = table["split"].value_counts()
        write_json(folder / "metrics.json", {
            "method": method, "fitted_on": "train+val",
            "n_subjects": {s: int(counts.get(s, 0)) for s in ("train", "val", "test")}, "test": metrics})

    def _evaluate(self) -> None:
        from deeplsm.evaluate import evaluate_maps

        results: dict[str, dict] = {}
        wanted = self.map_methods()
        res: dict = {}
        truth, labels = self.truth_per_score()
        for folder, prefix in self.map_folders():
            # only the maps of scores with a truth (truth_labels may leave scores out)
            files = [f for f in sorted(folder.glob("*.nii*"))
                     if any(f.name.split(".nii")[0].endswith("_" + n) for n in labels)]
            if not files:
                continue
            res = evaluate_maps(files, truth, labels=labels)
            for method, per_output in res["results"].items():
                if f"{prefix}{method}" in wanted:  # not maps an earlier config left behind
                    results[f"{prefix}{method}"] = per_output
        # The key ties these numbers to this run: the report uses them only while it matches.
        write_json(self.out / "evaluation.json", {
            "key": self.keys["evaluate"],
            "upstream": {s: self.keys[s] for s in STAGES if s in self.keys and s != "evaluate"},
            "results": results, "truth_labels": labels, "definitions": res.get("definitions"),
            "metrics_version": res.get("metrics_version")})

    def map_methods(self) -> set[str]:
        """Method names (as in ``metrics.json``) whose maps this run's configuration makes."""
        cfg = self.config
        return ({f"{mode}_{m}" for mode in cfg["models"]["modes"] for m in cfg["explain"]["methods"]}
                | set(cfg["classical"]["methods"]))

    def atlas(self):
        """The :class:`deeplsm.evaluate.Atlas` of ``report.atlas`` / ``report.atlas_labels``, or None."""
        r = self.config["report"]
        if r["atlas"] is None:
            return None
        from deeplsm.evaluate import load_atlas

        return load_atlas(r["atlas"], r["atlas_labels"])

    def _clusters(self) -> None:
        """A cluster table next to every map in ``maps/`` (descriptive defaults of
        :func:`deeplsm.evaluate.cluster_table`); with an atlas, also relabel ``classical/``."""
        from deeplsm.classical import write_cluster_tables
        from deeplsm.evaluate import cluster_table, clusters_path, write_cluster_table

        atlas = self._atlas
        for folder, _ in self.map_folders():
            for f in sorted(folder.glob("*.nii.gz")):
                write_cluster_table(cluster_table(f, atlas=atlas), clusters_path(f))
        if atlas is not None:
            for method in self.config["classical"]["methods"]:
                if (self.out / "classical" / method / "summary.json").is_file():
                    write_cluster_tables(self.out / "classical" / method, atlas)

    def _resolve_truth(self) -> dict[str, list[int]] | None:
        """:meth:`truth_per_score`'s mapping, with a log line naming the scores it leaves out."""
        mapping = self.truth_per_score()[1]
        left_out = [n for n in self._scores().columns if mapping is not None and n not in mapping]
        if left_out:
            log.info("no ground truth for %s (not in scores.truth_labels): their maps are not scored",
                     ", ".join(left_out))
        return mapping

    def truth_per_score(self) -> tuple[Path | None, dict[str, list[int]] | None]:
        """The truth image and the labels of it that are each score's truth (their union).

        Matched by name (see :mod:`deeplsm.study._truth`): ``scores.truth_labels``, else the
        simulation's record (``simulation.json``), else the trailing number of each score's
        name, else one score and one label; anything else is an error asking for
        ``scores.truth_labels``. Scores without an entry have no truth. ``(None, None)``
        without a truth image.
        """
        truth = self.truth_path
        if truth is None:
            return None, None
        import nibabel as nib

        sim_json = self.sim_dir / "simulation.json"
        simulated = json.loads(sim_json.read_text()).get("truth_labels") if sim_json.exists() else None
        s = self.config["scores"]
        given = s.get("truth_labels") if s["source"] != "simulate" else None
        present = image_labels(np.asarray(nib.load(truth).dataobj))
        names = list(pd.read_csv(self.sim_dir / "scores.csv", nrows=0).columns[1:])
        mapping, _ = resolve_truth_labels(names, present, given=given, simulated=simulated,
                                          image="the truth image on the analysis grid")
        return truth, mapping

    def map_folders(self) -> list[tuple[Path, str]]:
        """Folders of normalised maps to score, with the method-name prefix they get."""
        out = []
        for mode in self.config["models"]["modes"]:
            if self.maps_dir(mode).is_dir():
                out.append((self.maps_dir(mode), f"{mode}_"))
        cls = self.out / "maps" / "classical"
        if cls.is_dir():
            out.append((cls, ""))
        return out

    def _report(self) -> dict:
        from deeplsm.report import build_metrics, write_report

        metrics = build_metrics(self)
        metrics["directions"] = dict(self.directions)
        metrics["config"] = self.config
        metrics["versions"] = package_versions()
        metrics["timings_s"] = {k: round(v, 2) for k, v in self.timings.items()}
        write_report(self, metrics)
        return metrics


def _volume_trend(train: LesionCohort, y_train: np.ndarray, cohort: LesionCohort) -> np.ndarray:
    """The lesion-volume trend of ``y_train`` (least squares on the training subjects) at every
    subject of ``cohort``, centred on the training mean: what SVR-LSM's ``'score'`` volume correction
    removed from the score, to be added back to its predictions."""
    Z = np.column_stack([np.ones(train.n_subjects), train.lesion_volumes_ml()])
    beta = np.linalg.lstsq(Z, y_train, rcond=None)[0]
    return np.column_stack([np.ones(cohort.n_subjects), cohort.lesion_volumes_ml()]) @ beta - y_train.mean()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


def _hidden(f: Path, root: Path) -> bool:
    """Whether ``f`` lies under a hidden name below ``root`` (markers, temporary files)."""
    return any(part.startswith(".") for part in f.relative_to(root).parts)


def _copy_truth(truth: str, cohort: LesionCohort, dest: Path) -> None:
    import nibabel as nib

    from deeplsm._validation import AFFINE_TOLERANCE_MM, load_nifti

    data, affine = load_nifti(truth)  # names the file on a missing, corrupt or 4D image
    img = nib.Nifti1Image(data, affine)
    if img.shape[:3] != cohort.shape or not np.allclose(affine, cohort.affine, atol=AFFINE_TOLERANCE_MM):
        from nilearn.image import resample_img

        img = resample_img(img, target_affine=cohort.affine, target_shape=cohort.shape,
                           interpolation="nearest", force_resample=True, copy_header=True)
    cohort.to_img(np.asarray(img.dataobj).astype(np.int16)).to_filename(dest)


def run_study(config: dict, out: str | os.PathLike, *, verbose: bool = True) -> dict:
    """Run (or resume) the study ``config`` in ``out``; return the ``metrics.json`` content."""
    if not isinstance(config, dict):
        raise DeepLSMError("config must be a dict (see deeplsm.study.make_config)")
    return Study(config, out, verbose=verbose).run()
