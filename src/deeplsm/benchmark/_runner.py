"""Run the benchmark's cells: cached and resumable per cell, serial, joblib or Dask.

Layout of ``DIR``::

    bench_config.json            the checked configuration
    sources/<label>.lesions.npz  one analysis-grid pool per lesion source (+ <label>.json)
    cells/<cell id>/spec.json    what the cell runs (its study configuration included)
    cells/<cell id>/study/       the cell's study folder (cached and resumable stage by stage)
    cells/<cell id>/cell.json    status, seconds and peak memory once the cell finished
    cells/<cell id>/log.txt      the cell process's output
    results.csv, cells.csv, benchmark.html, benchmark.json

A cell whose ``cell.json`` holds the same key and status ``ok`` is skipped; any other cell runs
``deeplsm.study.run_study`` in a fresh process, which itself reuses the stages it finished
before, so an interrupted benchmark resumes inside the cell it was running.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from deeplsm._docs import fill_doc
from deeplsm._utils import package_versions, progress_disabled, write_json
from deeplsm.benchmark._config import Cell, cells, study_config
from deeplsm.benchmark._sources import prepare_pool
from deeplsm.exceptions import DeepLSMError

log = logging.getLogger("deeplsm")

#: How long to wait for the Dask scheduler before giving up.
DASK_CONNECT_TIMEOUT = "20s"


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _cell_key(cell: dict, pool_key: str, study: dict) -> str:
    study = copy.deepcopy(study)
    study["models"].pop("threads", None)  # results do not depend on the thread count
    return _key(cell, pool_key, study)


def launch_cell(spec_path: str, threads: int | None = None) -> dict:
    """Run one cell in a fresh Python process; return its ``cell.json`` record.

    This is the task that joblib and Dask workers run; ``DIR`` must be visible to them.
    """
    spec = json.loads(Path(spec_path).read_text())
    cell_dir = Path(spec["dir"])
    record_path = cell_dir / "cell.json"
    record_path.unlink(missing_ok=True)
    env = dict(os.environ)
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(threads)
    t0 = time.perf_counter()
    with open(cell_dir / "log.txt", "w") as logf:
        proc = subprocess.Popen([sys.executable, "-m", "deeplsm.benchmark._cell", str(spec_path)],
                                stdout=logf, stderr=subprocess.STDOUT, env=env)
        try:
            proc.wait()
        except BaseException:  # interrupted: stop the cell too; its study resumes on a rerun
            proc.terminate()
            proc.wait()
            raise
    if record_path.exists():
        record = json.loads(record_path.read_text())
    else:
        record = {"key": spec["key"], "cell": spec["cell"], "status": "failed",
                  "error": f"the cell process exited with code {proc.returncode}; see {cell_dir / 'log.txt'}",
                  "seconds": round(time.perf_counter() - t0, 2), "peak_rss_mb": None, "finished": None}
    # Where it ran: the machine, and the thread that launched it (a joblib or Dask worker's).
    record["launched_by"] = {"host": socket.gethostname(), "thread": threading.current_thread().name}
    write_json(record_path, record)
    return record


def _dask_client(address: str):
    try:
        from dask.distributed import Client
    except ImportError:
        raise DeepLSMError("--dask-scheduler needs dask.distributed: pip install 'deeplsm[benchmark]'"
                           ) from None
    try:
        return Client(address, timeout=DASK_CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as err:
        raise DeepLSMError(f"cannot reach the Dask scheduler at {address} ({err})") from None


def _execute(tasks: list[tuple[str, int | None]], jobs: int, client=None) -> Iterator[dict]:
    """Yield each cell's record as it finishes (on the Dask ``client``'s cluster when given)."""
    if not tasks:
        return
    if client is not None:
        from dask.distributed import as_completed

        futures = [client.submit(launch_cell, path, threads, pure=False) for path, threads in tasks]
        for fut in as_completed(futures):
            yield fut.result()
    elif jobs == 1:
        for path, threads in tasks:
            yield launch_cell(path, threads)
    else:
        from joblib import Parallel, delayed

        # Each task only waits on its own process, so threads are enough to run them side by side.
        yield from Parallel(n_jobs=jobs, prefer="threads", return_as="generator_unordered")(
            delayed(launch_cell)(path, threads) for path, threads in tasks)


def _plan(config: dict, grid: list[Cell], out: Path, pools: dict, threads: int | None
          ) -> tuple[list[tuple[str, int | None]], dict[str, dict], dict[str, list]]:
    """Split the grid into cells to run (their ``spec.json`` written), finished cells (cached) and
    cells left out (more subjects than their source has)."""
    summary: dict[str, list] = {"ran": [], "skipped": [], "failed": [], "too_few_subjects": []}
    tasks: list[tuple[str, int | None]] = []
    finished: dict[str, dict] = {}
    for cell in grid:
        pool_path, pool_key, n_pool = pools[cell.source]
        if cell.n > n_pool:
            summary["too_few_subjects"].append(cell.id)
            log.warning("benchmark: cell %s left out: source %s has only %d subjects",
                        cell.id, cell.source, n_pool)
            continue
        cell_dir = out / "cells" / cell.id
        subjects = cell_dir / f"subjects-{_key(pool_key, cell.n, cell.seed)[:8]}.lesions.npz"
        study = study_config(config, cell, subjects, threads)
        key = _cell_key(cell.to_dict(), pool_key, study)
        rec_path = cell_dir / "cell.json"
        if rec_path.exists():
            rec = json.loads(rec_path.read_text())
            if rec.get("key") == key and rec.get("status") == "ok":
                summary["skipped"].append(cell.id)
                finished[cell.id] = rec
                continue
        cell_dir.mkdir(parents=True, exist_ok=True)
        spec = {"key": key, "cell": cell.to_dict(), "dir": str(cell_dir), "pool": str(pool_path),
                "study": study}
        write_json(cell_dir / "spec.json", spec)
        tasks.append((str(cell_dir / "spec.json"), threads))
    return tasks, finished, summary


@fill_doc
def run_benchmark(config: dict, out: str | os.PathLike, *, jobs: int = 1,
                  dask_scheduler: str | None = None, verbose: bool = True) -> dict:
    """Run (or resume) every cell of ``config`` in ``out``, then write the results and the page.

    Parameters
    ----------
    config : dict
        From :func:`deeplsm.benchmark.load_bench_config` / :func:`make_bench_config`.
    out : path
        Output folder; rerunning in it skips the finished cells.
    jobs : int, default=1
        Cells run side by side on this machine (joblib); each gets ``cores // jobs`` torch threads
        unless ``cells.threads`` says otherwise.
    dask_scheduler : str or None, default=None
        Address of a Dask scheduler (``tcp://host:8786``): the cells run on its workers, which
        must see ``out`` at the same path (a shared file system).
    %(verbose)s

    Returns
    -------
    dict
        ``ran``, ``skipped``, ``failed`` and ``too_few_subjects`` (cell ids), ``results`` (the
        tidy results as a DataFrame), and ``seconds``.
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise DeepLSMError(f"jobs must be a positive integer, got {jobs!r}")
    t0 = time.perf_counter()
    client = _dask_client(dask_scheduler) if dask_scheduler else None  # before any output
    try:
        return _run(config, Path(out).resolve(), jobs, dask_scheduler, client, verbose, t0)
    finally:
        if client is not None:
            client.close()


def _run(config: dict, out: Path, jobs: int, dask_scheduler: str | None, client, verbose: bool,
         t0: float) -> dict:
    from tqdm.auto import tqdm

    from deeplsm.benchmark._html import write_benchmark_html
    from deeplsm.benchmark._results import collect_results, headline_attribution, write_results

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "bench_config.json", config)
    pools = {label: prepare_pool(config, label, out / "sources", verbose=verbose)
             for label in config["grid"]["sources"]}
    threads = config["cells"]["threads"]
    if threads is None and not dask_scheduler:
        threads = max(1, (os.cpu_count() or 1) // jobs)
    grid = cells(config)
    tasks, finished, summary = _plan(config, grid, out, pools, threads)
    n_cells = len(grid) - len(summary["too_few_subjects"])
    log.info("benchmark: %d cells, %d cached, %d to run", n_cells, len(summary["skipped"]), len(tasks))
    with tqdm(total=n_cells, initial=len(summary["skipped"]), desc="benchmark cells", unit="cell",
              disable=progress_disabled(verbose)) as bar:
        for rec in _execute(tasks, jobs, client):
            cid = _cell_id(rec["cell"])
            finished[cid] = rec
            summary["failed" if rec["status"] != "ok" else "ran"].append(cid)
            if rec["status"] != "ok":
                log.warning("benchmark: cell %s failed: %s", cid, rec["error"])
            bar.update(1)
    order = {c.id: i for i, c in enumerate(grid)}
    records = sorted(finished.values(), key=lambda r: order.get(_cell_id(r["cell"]), 0))
    headline = headline_attribution(config)
    results = collect_results(out, records, headline)
    write_results(out, results, records)
    seconds = round(time.perf_counter() - t0, 1)
    meta = {"config": config, "versions": package_versions(), "seconds": seconds,
            "jobs": jobs, "dask_scheduler": dask_scheduler, "headline_attribution": headline,
            **{k: sorted(v) for k, v in summary.items()}}
    write_json(out / "benchmark.json", meta)
    write_benchmark_html(out, results, records, meta)
    if summary["failed"]:
        first = finished[summary["failed"][0]]
        raise DeepLSMError(
            f"{len(summary['failed'])} of {n_cells} cells failed (first: {summary['failed'][0]}: "
            f"{first['error']}); the others are in {out / 'results.csv'}; rerun to retry"
        )
    return {**summary, "results": results, "seconds": seconds}


def _cell_id(cell: dict) -> str:
    return Cell(**cell).id
