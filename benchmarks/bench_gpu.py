"""GPU benchmark: the paper-scale study end to end, timed stage by stage, under a hard time limit.

What it runs (``deeplsm.study.run_study`` with a configuration built here): 822 synthetic WMH
subjects on the paper's grid (1.667 mm, 87×109×93), three 8-voxel ROIs, the multi-output model
and one single-output model per score (``gpu`` preset: bf16, batch 32, AdamW one-cycle; 30
epochs multi, 20 single), Integrated Gradients (32 steps), GradientSHAP (8 samples) and
lesion-aware occlusion (window 8, stride 4) on every test subject, VLSM (t-test, 1000
permutations), SVR-LSM, evaluation and the report. Then, within the same limit, one epoch of the
paper's own preset (Adam 1e-5, batch 4, fp32) on the same cohort, so that the cost of the paper's
settings (200 epochs per model) can be stated.

As it goes, it logs progress to stderr and rewrites ``--json`` (flushed to disk after every
event): the stage running, every stage's seconds, the elapsed time. When ``--time-limit``
seconds have passed it stops the run (exit code 124) and records the stage it stopped in, so a
killed run still says where the time went; a second, hard limit 30 s later ends the process
even if a native call does not return.

On a CPU, ``--tiny`` runs the same stages at toy size (60 subjects at 8 mm, 1 epoch, fp32, one
torch thread): about 30 s of CPU time (26 s user time; 130 s wall on the shared 2-core machine at
load average 15); ``tests/benchmarks`` runs it that way.

Launching it on a GPU machine of this workplace (see /work/.library/device/README.md)
------------------------------------------------------------------------------------------
That machine has torch, Lightning, scipy, scikit-learn, pandas and matplotlib but not MONAI,
captum, nibabel or nilearn, and it cannot download anything. Here, once, in the repository root::

    bash benchmarks/gpu_wheels.sh          # the four wheels into .whl/ (git-ignored), 17 MB

Then one ``run`` call, carrying ``.whl`` (``carry: [".whl"]``, ``timeout_s`` 600)::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \\
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1 CI=1 \\
        && python3 benchmarks/bench_gpu.py --out /tmp/gpu_study --json $OUT/bench_gpu.json \\
           --copy-report $OUT/report.html --time-limit 540

(``CI=1`` hides the progress bars, so the returned log tail holds the stage lines.)
``$OUT/bench_gpu.json`` comes back with the stage times, the GPU's name and memory, the test r²
and localisation scores, and the paper-preset epoch; ``$OUT/report.html`` is the study's report.
Anywhere else: ``PYTHONPATH=src python benchmarks/bench_gpu.py --out gpu_study``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import torch

from deeplsm._device import resolve_device
from deeplsm._utils import package_versions
from deeplsm.exceptions import DeepLSMError
from deeplsm.study import make_config, run_study

log = logging.getLogger("deeplsm.bench_gpu")

#: Exit code of a run stopped by --time-limit (as GNU timeout).
TIMED_OUT = 124
#: Seconds after --time-limit at which the process is ended whatever it is doing.
HARD_GRACE_S = 30.0


def study_config(device: str, *, tiny: bool = False, epochs: int = 30, single_epochs: int = 20,
                 modes: tuple[str, ...] = ("multi", "single")) -> dict:
    """The benchmark's study: the paper's scale, or ``tiny`` for a CPU smoke test."""
    if tiny:
        cohort = {"n_subjects": 60, "voxel_size": 8.0, "grid": None}
        scores = {"roi_size": 1, "min_patients": 8}
        # fp32: bf16 autocast gains nothing on a CPU (docs/train.md) and the smoke test is CPU-only
        overrides = {"max_epochs": 1, "precision": "32-true"}
        single = {"max_epochs": 1}
        explain = {"n_steps": 4, "internal_batch_size": 4, "n_samples": 2, "window": 2, "stride": 2}
        classical = {"permutations": 20}
    else:
        cohort = {"n_subjects": 822, "grid": "paper", "voxel_size": None}
        scores = {"roi_size": 8, "min_patients": 10}
        overrides = {"max_epochs": int(epochs)}
        single = {"max_epochs": int(single_epochs)}
        explain = {"n_steps": 32, "internal_batch_size": 32, "n_samples": 8, "window": 8, "stride": 4}
        classical = {"permutations": 1000}
    return make_config({
        "cohort": {"source": "synthetic", "seed": 0, **cohort},
        "scores": {"source": "simulate", "n_rois": 3, "seed": 0, **scores},
        "models": {"modes": list(modes), "preset": "gpu", "seed": 0, "overrides": overrides,
                   "single_overrides": single, "device": device},
        "explain": {"methods": ["ig", "gradshap", "occlusion"], "subjects": "test",
                    "max_subjects": None, "nt_samples": None, "device": device, **explain},
        "classical": {"methods": ["vlsm", "svr", "ridge"], "subjects": "trainval", "svr_permutations": 0,
                      **classical},
    })


class Recorder:
    """The JSON record of the run, rewritten (and flushed to disk) after every event."""

    def __init__(self, path: Path, head: dict) -> None:
        self.path = path
        self.t0 = time.perf_counter()
        self.data = {**head, "status": "running", "running": None, "elapsed_s": 0.0, "stages": {}}
        self._lock = threading.Lock()
        self.write()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def write(self) -> None:
        with self._lock:
            self.data["elapsed_s"] = round(self.elapsed(), 2)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            with os.fdopen(fd, "w") as fh:
                json.dump(self.data, fh, indent=2, default=str)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)

    def start(self, stage: str) -> None:
        self.data["running"] = stage
        self.data["stages"][stage] = {"status": "running", "started_at_s": round(self.elapsed(), 2)}
        self.write()
        log.info("[%6.1f s] %s ...", self.elapsed(), stage)

    def finish(self, stage: str, seconds: float | None = None, status: str = "done") -> None:
        entry = self.data["stages"].setdefault(stage, {})
        if seconds is None and "started_at_s" in entry:
            seconds = self.elapsed() - entry["started_at_s"]
        entry.update({"status": status, "seconds": None if seconds is None else round(seconds, 2)})
        if self.data["running"] == stage:
            self.data["running"] = None
        self.write()
        log.info("[%6.1f s] %s %s in %.1f s", self.elapsed(), stage, status, seconds or 0.0)


class StageLog(logging.Handler):
    """Follows the study's own ``stage NAME running / done / cached`` log lines."""

    _PATTERN = re.compile(r"^stage (\S+)\s+(running|done in ([\d.]+) s|cached)")

    def __init__(self, rec: Recorder) -> None:
        super().__init__(logging.INFO)
        self.rec = rec

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        m = self._PATTERN.match(msg)
        if m is None:  # the study's other progress lines (e.g. per-method explain times)
            log.info("[%6.1f s]   %s", self.rec.elapsed(), msg)
            return
        stage, what = m.group(1), m.group(2)
        if what == "running":
            self.rec.start(stage)
        elif what == "cached":
            self.rec.finish(stage, 0.0, status="cached")
        else:
            self.rec.finish(stage, float(m.group(3)))


class BenchTimeout(BaseException):
    """Raised in the main thread at --time-limit (a BaseException, so no ``except Exception``
    on the way swallows it)."""


def machine_info(device: torch.device) -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": str(device), "torch": torch.__version__, "cuda": torch.version.cuda}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update({"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                     "cudnn": torch.backends.cudnn.version()})
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    return info


def paper_epoch(out: Path, rec: Recorder, device: str, n_models: int) -> dict:
    """One epoch of the paper's preset (multi-output) on the study's cohort and scores."""
    from deeplsm.cohort import LesionCohort, load_scores
    from deeplsm.train import train_run

    cohort = LesionCohort.load(out / "cohort" / "cohort.lesions.npz")
    scores = load_scores(out / "simulation" / "scores.csv")
    run = out / "paper_epoch"
    shutil.rmtree(run, ignore_errors=True)
    rec.start("paper_preset_epoch")
    train_run(run, cohort, scores, mode="multi", preset="paper", overrides={"max_epochs": 1},
              device=device, verbose=False)
    m = json.loads((run / "metrics.json").read_text())
    fit = float(m["training"]["multi"]["fit_seconds"])
    rec.finish("paper_preset_epoch")
    from deeplsm.train import get_preset

    epochs = int(get_preset("paper")["max_epochs"])
    return {"fit_seconds_one_epoch": fit, "paper_epochs": epochs,
            "estimate_s_multi": round(fit * epochs, 1),
            "estimate_s_all_models": round(fit * epochs * n_models, 1),
            "note": "estimates = measured epoch (train + validation + checkpoint) x epochs; "
                    "not a measured full run"}


def summarise(metrics: dict) -> dict:
    """The headline numbers of the study's metrics.json."""
    pred = {mode: {s: {k: v.get(k) for k in ("r2_pearson", "r2", "mse")} for s, v in per.items()}
            for mode, per in metrics.get("prediction", {}).items()}
    loc = {m: {s: {k: v.get(k) for k in ("pr_auc", "average_precision", "cdc")} for s, v in per.items()}
           for m, per in metrics.get("localization", {}).items()}
    return {"prediction": pred, "localization": loc, "timings_s": metrics.get("timings_s", {})}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="gpu_study", help="study folder (reruns reuse finished stages)")
    ap.add_argument("--json", help="stage-time record (default: OUT/bench_gpu.json)")
    ap.add_argument("--time-limit", type=float, default=540.0,
                    help="seconds until the run is stopped (default 540)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    ap.add_argument("--tiny", action="store_true",
                    help="60 subjects at 8 mm, 1 epoch: a CPU smoke test of the same stages")
    ap.add_argument("--epochs", type=int, default=30, help="multi-output epochs (default 30)")
    ap.add_argument("--single-epochs", type=int, default=20,
                    help="epochs of each single-output model (default 20)")
    ap.add_argument("--skip-paper-epoch", action="store_true",
                    help="do not time one epoch of the paper's preset")
    ap.add_argument("--threads", type=int,
                    help="torch CPU threads (default: torch's choice; 1 with --tiny, since tiny "
                    "nets on busy cores ran 10x slower with 2)")
    ap.add_argument("--fresh", action="store_true", help="delete OUT first (no cached stages)")
    ap.add_argument("--copy-report", metavar="HTML", help="also copy report.html here")
    args = ap.parse_args(argv)

    _setup_logging()
    try:
        device = resolve_device(args.device, what="--device")
    except DeepLSMError as err:
        print(f"bench_gpu: error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    if args.fresh:
        shutil.rmtree(out, ignore_errors=True)
    json_path = Path(args.json).resolve() if args.json else out / "bench_gpu.json"
    config = study_config(args.device, tiny=args.tiny, epochs=args.epochs,
                          single_epochs=args.single_epochs)
    n_models = (1 if "multi" in config["models"]["modes"] else 0) + (
        config["scores"]["n_rois"] if "single" in config["models"]["modes"] else 0)
    rec = Recorder(json_path, {
        "benchmark": "bench_gpu", "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": sys.argv[1:] if argv is None else list(argv), "tiny": bool(args.tiny),
        "time_limit_s": args.time_limit, "machine": machine_info(device),
        "versions": package_versions(), "config": config,
    })
    handler = StageLog(rec)
    study_log = logging.getLogger("deeplsm")
    level = study_log.level
    study_log.setLevel(logging.INFO)
    study_log.addHandler(handler)

    def on_alarm(signum, frame):
        raise BenchTimeout(f"time limit of {args.time_limit:g} s reached")

    def hard_stop():
        rec.data.update(status="killed", error=f"hard limit {args.time_limit + HARD_GRACE_S:g} s")
        rec.write()
        print(f"bench_gpu: killed at the hard limit in stage {rec.data['running']}", file=sys.stderr)
        os._exit(TIMED_OUT)

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(args.time_limit, 0.01))
    hard = threading.Timer(args.time_limit + HARD_GRACE_S, hard_stop)
    hard.daemon = True
    hard.start()
    threads = torch.get_num_threads()
    if args.threads or args.tiny:
        torch.set_num_threads(args.threads or 1)
    rc = 0
    try:
        metrics = run_study(config, out, verbose=not args.tiny)
        timings = metrics.get("timings_s", {})
        for stage, secs in timings.items():  # the study's own figures, unrounded by its log
            if stage in rec.data["stages"] and rec.data["stages"][stage].get("status") == "done":
                rec.data["stages"][stage]["seconds"] = secs
        rec.finish("report", timings.get("report"))
        rec.data["study_total_s"] = round(sum(timings.values()), 2)
        rec.data["results"] = summarise(metrics)
        rec.write()
        if args.copy_report:
            Path(args.copy_report).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out / "report.html", args.copy_report)
        if not args.skip_paper_epoch:
            rec.data["paper_preset"] = paper_epoch(out, rec, args.device, n_models)
        rec.data["status"] = "finished"
    except BenchTimeout as err:
        rec.data.update(status="timed_out", error=str(err))
        print(f"bench_gpu: {err} in stage {rec.data['running']}", file=sys.stderr)
        rc = TIMED_OUT
    except (Exception, KeyboardInterrupt) as err:
        rec.data.update(status="failed", error=f"{type(err).__name__}: {err}",
                        traceback=traceback.format_exc())
        print(traceback.format_exc(), file=sys.stderr)
        rc = 1
    finally:
        torch.set_num_threads(threads)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        hard.cancel()
        study_log.removeHandler(handler)
        study_log.setLevel(level)
        rec.write()
    log.info("[%6.1f s] %s; record in %s", rec.elapsed(), rec.data["status"], json_path)
    return rc


def _setup_logging() -> None:
    bench = logging.getLogger("deeplsm.bench_gpu")
    bench.setLevel(logging.INFO)
    if not bench.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("bench_gpu: %(message)s"))
        bench.addHandler(h)
        bench.propagate = False


if __name__ == "__main__":
    sys.exit(main())
