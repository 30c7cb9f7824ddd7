"""One benchmark cell, run in its own process: draw the subjects, run the study, record resources.

``python -m deeplsm.benchmark._cell CELL_DIR/spec.json`` writes ``CELL_DIR/cell.json``::

    {"key", "cell", "status": "ok"|"failed", "error", "seconds", "cpu_seconds", "peak_rss_mb",
     "finished"}

A fresh process per cell makes ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` the peak resident
memory of exactly this cell (Python, torch and the data included), and isolates a crash.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from deeplsm._utils import write_json


def peak_rss_mb() -> float:
    """Peak resident set size of this process and its waited-for children, in MiB (Linux: KiB units)."""
    kib = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    scale = 1 / 1024 / 1024 if sys.platform == "darwin" else 1 / 1024  # macOS reports bytes
    return round(kib * scale, 1)


def cpu_seconds() -> float:
    """User + system CPU time of this process and its waited-for children (less load-sensitive
    than wall time on a shared machine)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return round(total, 1)


def prune_resume_checkpoints(study_dir: Path) -> int:
    """Delete the ``last.ckpt`` files of a finished study; return the bytes freed.

    They hold the optimiser state only to resume an interrupted training (about 170 MB per
    ResNet10); once the study finished, the weights in ``best.ckpt`` are all it reads again.
    """
    freed = 0
    for ckpt in (study_dir / "train").rglob("last.ckpt"):
        freed += ckpt.stat().st_size
        ckpt.unlink()
    return freed


def run_cell(spec: dict) -> dict:
    """Run the cell described by ``spec`` (written by the runner) and return its record."""
    from deeplsm.benchmark._sources import write_cell_subjects
    from deeplsm.exceptions import DeepLSMError
    from deeplsm.study import run_study

    cell_dir = Path(spec["dir"])
    t0 = time.perf_counter()
    record = {"key": spec["key"], "cell": spec["cell"], "status": "ok", "error": None}
    try:
        dest = Path(spec["study"]["cohort"]["source"])
        if not dest.exists():
            write_cell_subjects(Path(spec["pool"]), spec["cell"]["n"], spec["cell"]["seed"], dest)
        run_study(spec["study"], cell_dir / "study", verbose=False)
        prune_resume_checkpoints(cell_dir / "study")
    except DeepLSMError as err:
        record.update(status="failed", error=str(err))
    record.update(seconds=round(time.perf_counter() - t0, 2), cpu_seconds=cpu_seconds(),
                  peak_rss_mb=peak_rss_mb(),
                  finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
    write_json(cell_dir / "cell.json", record)
    return record


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text())
    record = run_cell(spec)
    return 0 if record["status"] == "ok" else 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
