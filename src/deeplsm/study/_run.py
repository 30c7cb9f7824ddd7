"""Run a configured study end to end, stage by stage, with caching and resume.

Stages (each writes under ``DIR`` and records itself in ``DIR/stages/<stage>.json``):

1. ``cohort``      → ``DIR/cohort/cohort.lesions.npz``
2. ``simulate``    → ``DIR/simulation/{scores.csv, rois.nii.gz, simulation.json}``
3. ``train_multi`` / ``train_single`` → ``DIR/train/{multi,single}/`` (run directories)
4. ``explain_multi`` / ``explain_single`` → ``DIR/maps/{multi,single}/``
5. ``vlsm`` / ``svr`` → ``DIR/classical/{vlsm,svr}/`` (+ normalised maps in ``DIR/maps/classical``)
6. ``evaluate``    → ``DIR/evaluation.json`` (when the ROIs are known)
7. ``report``      → ``DIR/metrics.json``, ``DIR/report.html``, ``DIR/README.txt``

A stage is skipped when its record holds the same key: a hash of its own settings and of the
keys of the stages it reads, so changing a setting redoes that stage and everything downstream.
Training is resumable from its ``last.ckpt`` after a kill; every other stage writes to a
temporary folder and renames it, so an interrupted stage leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from deeplsm._utils import atomic_path, package_versions, write_json
from deeplsm.cohort import LesionCohort, load_lesions, load_scores, write_scores
from deeplsm.exceptions import DeepLSMError

log = logging.getLogger("deeplsm")

STAGES = ("cohort", "simulate", "train_multi", "train_single", "explain_multi", "explain_single",
          "vlsm", "svr", "evaluate", "report")


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Study:
    """One configured study in an output folder.

    Parameters
    ----------
    config : dict
        As returned by :func:`deeplsm.study.make_config` / :func:`load_config`.
    out : path
        Output folder; created if needed. Rerunning in the same folder reuses finished stages.
    verbose : bool, default=True
        Progress bars and per-stage log lines.
    """

    def __init__(self, config: dict, out: str | os.PathLike, *, verbose: bool = True) -> None:
        self.config = config
        self.out = Path(out)
        self.verbose = verbose
        self.keys: dict[str, str] = {}
        self.timings: dict[str, float] = {}
        self.skipped: list[str] = []
        self.ran: list[str] = []

    # --- stage bookkeeping ----------------------------------------------------------------
    def _record_path(self, name: str) -> Path:
        return self.out / "stages" / f"{name}.json"

    def _stage(self, name: str, key: str, fn: Callable[[], None]) -> None:
        self.keys[name] = key
        rec_path = self._record_path(name)
        if rec_path.exists():
            rec = json.loads(rec_path.read_text())
            if rec.get("key") == key:
                self.timings[name] = float(rec.get("seconds", 0.0))
                self.skipped.append(name)
                log.info("stage %-14s cached (%.1f s when run)", name, self.timings[name])
                return
            rec_path.unlink()
        log.info("stage %-14s running", name)
        t0 = time.perf_counter()
        fn()
        secs = time.perf_counter() - t0
        self.timings[name] = secs
        self.ran.append(name)
        write_json(rec_path, {"stage": name, "key": key, "seconds": round(secs, 3)})
        log.info("stage %-14s done in %.1f s", name, secs)

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
        cfg = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        write_json(self.out / "config.json", cfg)
        k_cohort = _key("cohort", cfg["cohort"])
        self._stage("cohort", k_cohort, self._make_cohort)
        k_sim = _key("simulate", k_cohort, cfg["scores"])
        self._stage("simulate", k_sim, self._make_scores)
        model_cfg = {k: cfg["models"][k] for k in ("preset", "seed", "overrides", "weights")}
        for mode in cfg["models"]["modes"]:
            extra = cfg["models"]["single_overrides"] if mode == "single" else {}
            k_train = _key("train", mode, k_sim, model_cfg, extra)
            self._stage(f"train_{mode}", k_train, lambda m=mode: self._train(m))
            k_expl = _key("explain", k_train, cfg["explain"])
            self._stage(f"explain_{mode}", k_expl, lambda m=mode: self._explain(m))
        for method in cfg["classical"]["methods"]:
            k_cls = _key(method, k_sim, cfg["classical"], cfg["models"]["seed"])
            self._stage(method, k_cls, lambda m=method: self._classical(m))
        upstream = [self.keys[s] for s in STAGES if s in self.keys]
        if self.truth_path is not None:
            self._stage("evaluate", _key("evaluate", upstream), self._evaluate)
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

            cohort = make_wmh_cohort(int(c["n_subjects"]), voxel_size=c["voxel_size"],
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
                if s["truth"]:
                    _copy_truth(s["truth"], cohort, tmp / "rois.nii.gz")

    def _scores(self) -> pd.DataFrame:
        return load_scores(self.sim_dir / "scores.csv")

    def _train(self, mode: str) -> None:
        from deeplsm.train import resume_run, train_run

        m = self.config["models"]
        out = self.run_dir(mode)
        if (out / "metrics.json").exists():
            shutil.rmtree(out)  # finished under another key: retrain
        if out.exists() and any(out.rglob("last.ckpt")):
            log.info("resuming %s from its last checkpoint", out)
            resume_run(out, verbose=self.verbose)
            return
        if out.exists():
            shutil.rmtree(out)
        overrides = {**m["overrides"], **(m["single_overrides"] if mode == "single" else {})}
        train_run(out, self.load_cohort(), self._scores(), mode=mode, preset=m["preset"],
                  seed=m["seed"], overrides=overrides or None, weights=m["weights"],
                  devices=m["devices"], strategy=m["strategy"], threads=m["threads"],
                  verbose=self.verbose,
                  sources={"lesions": str(self.cohort_path),
                           "scores": str(self.sim_dir / "scores.csv")})

    def _explain(self, mode: str) -> None:
        from deeplsm.explain import explain_run

        e = self.config["explain"]
        with atomic_path(self.maps_dir(mode)) as tmp:
            explain_run(self.run_dir(mode), methods=e["methods"], subjects=e["subjects"],
                        window=e["window"], stride=e["stride"],
                        occlusion_positive=e["occlusion_positive"], out_dir=tmp,
                        max_subjects=e["max_subjects"], verbose=self.verbose,
                        n_steps=e["n_steps"], internal_batch_size=e["internal_batch_size"],
                        n_samples=e["n_samples"], nt_samples=e["nt_samples"], stdevs=e["stdevs"],
                        random_state=e["seed"])

    def classical_subjects(self, cohort: LesionCohort) -> list[str]:
        """Subjects the classical methods see: the CNN's train + validation subjects, or all."""
        c = self.config["classical"]
        if c["subjects"] == "all":
            return list(cohort.subject_ids)
        from deeplsm.train import split_subjects

        split = split_subjects(cohort.subject_ids, random_state=self.config["models"]["seed"])
        return [s for s in cohort.subject_ids if split[s] != "test"]

    def _classical(self, method: str) -> None:
        from deeplsm.classical import SVRLSM, MassUnivariateLSM, save_fitted_maps

        c = self.config["classical"]
        cohort = self.load_cohort()
        ids = self.classical_subjects(cohort)
        sub = cohort.subset(ids)
        scores = self._scores().loc[ids]
        fitted = {}
        for i, name in enumerate(scores.columns):
            if method == "vlsm":
                est = MassUnivariateLSM(test=c["vlsm_test"], volume_correction=c["volume_correction"],
                                        min_subjects=c["min_subjects"], n_permutations=c["permutations"],
                                        correction="fwe" if c["permutations"] else "fdr",
                                        random_state=c["seed"] + i, verbose=self.verbose)
            else:
                est = SVRLSM(C=c["C"], gamma=c["gamma"], volume_correction=c["svr_volume_correction"],
                             min_subjects=c["min_subjects"], n_permutations=c["svr_permutations"],
                             random_state=c["seed"] + i)
            fitted[name] = est.fit(sub, scores[name].to_numpy())
        save_fitted_maps(self.out / "classical" / method, sub, fitted, method,
                         config={**c, "subjects_used": len(ids)})
        # Normalised positive part, scored like the CNN maps (lesion -> higher score).
        from deeplsm.explain import normalise_map

        maps = self.out / "maps" / "classical"
        maps.mkdir(parents=True, exist_ok=True)
        for name, est in fitted.items():
            stat = np.asarray(est.statistic_img_.dataobj, dtype=np.float64)
            with atomic_path(maps / f"{method}_{name}.nii.gz") as tmp:
                cohort.to_img(normalise_map(stat, positive=True), np.float32).to_filename(tmp)

    def _evaluate(self) -> None:
        from deeplsm.evaluate import evaluate_maps

        results: dict[str, dict] = {}
        truth, labels = self.truth_per_score()
        for folder, prefix in self.map_folders():
            res = evaluate_maps(folder, truth, labels=labels)
            for method, per_output in res["results"].items():
                results[f"{prefix}{method}"] = per_output
        write_json(self.out / "evaluation.json", {"results": results})

    def truth_per_score(self):
        """The truth image and score -> label mapping that :func:`evaluate_maps` needs.

        When ``simulation.json`` records ``truth_labels`` (score -> the labels that drive it),
        each score's truth is the union of its labels, given as one volume per score of a 4D
        stack; otherwise the label image itself, with the map name's trailing number as label.
        """
        sim_json = self.sim_dir / "simulation.json"
        mapping = json.loads(sim_json.read_text()).get("truth_labels") if sim_json.exists() else None
        if not mapping:
            return self.truth_path, None
        import nibabel as nib

        img = nib.load(self.truth_path)
        lab = np.asarray(img.dataobj)
        stack = np.stack([np.isin(lab, ks) for ks in mapping.values()], axis=-1).astype(np.uint8)
        return nib.Nifti1Image(stack, img.affine), {name: j + 1 for j, name in enumerate(mapping)}

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
        metrics["config"] = self.config
        metrics["versions"] = package_versions()
        metrics["timings_s"] = {k: round(v, 2) for k, v in self.timings.items()}
        write_report(self, metrics)
        return metrics


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
