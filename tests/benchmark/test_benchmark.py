"""``deeplsm benchmark`` end to end on a toy grid: results traceable to each cell's metrics.json,
cached cells, ``--jobs 2``, a Dask ``LocalCluster``, failed cells and the door checks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from deeplsm.benchmark import _runner, make_bench_config, run_benchmark
from deeplsm.cli import main
from deeplsm.cohort import LesionCohort
from deeplsm.exceptions import DeepLSMError


@pytest.fixture(scope="module")
def toy_source(tmp_path_factory):
    """60 subjects with random boxes on a 6 mm grid over the MNI brain, as a cohort cache."""
    tmp = tmp_path_factory.mktemp("toy")
    rng = np.random.default_rng(0)
    data = np.zeros((60, 20, 24, 20), np.uint8)
    for i in range(60):
        c = rng.integers([6, 6, 6], [14, 18, 14])
        r = rng.integers(2, 5, size=3)
        data[i, c[0] - r[0]:c[0] + r[0], c[1] - r[1]:c[1] + r[1], c[2] - r[2]:c[2] + r[2]] = 1
    aff = np.diag([6.0, 6.0, 6.0, 1.0])
    aff[:3, 3] = [-60, -90, -48]
    return LesionCohort([f"s{i:02d}" for i in range(60)], data, aff).save(tmp / "toy.lesions.npz")


def toy_config(source, permutations: int = 10, **cells) -> dict:
    return make_bench_config({
        "grid": {"scenarios": ["linear", "or"], "n": [40], "sources": ["toy"], "seeds": [0]},
        "sources": {"toy": str(source)},
        "pool": {"voxel_size": None},
        "cells": {"min_patients_fraction": 0.1, **cells},
        "study": {
            "scores": {"n_rois": 1, "roi_size": 1},
            "models": {"overrides": {"max_epochs": 1, "batch_size": 16}, "single_overrides": {}},
            "explain": {"methods": ["ig", "occlusion"], "max_subjects": 4, "n_steps": 2},
            "classical": {"methods": ["vlsm", "svr"], "permutations": permutations},
        },
    })


@pytest.fixture(scope="module")
def bench(tmp_path_factory, toy_source):
    """The toy grid, run once with ``jobs=2``."""
    out = tmp_path_factory.mktemp("bench") / "out"
    return out, run_benchmark(toy_config(toy_source), out, jobs=2, verbose=False)


def launcher(out, cell: str) -> str:
    """The thread that launched the cell's process (recorded in its cell.json)."""
    return json.loads((out / "cells" / cell / "cell.json").read_text())["launched_by"]["thread"]


CELLS = {"linear-n40-toy-noise0-vol0-seed0", "or-n40-toy-noise0-vol0-seed0"}


def test_jobs_2_runs_the_cells_in_joblib_workers(bench):
    out, res = bench
    assert set(res["ran"]) == CELLS and res["failed"] == []
    assert all(launcher(out, c) != "MainThread" for c in CELLS)


def test_results_schema_and_values_trace_to_each_cells_metrics(bench):
    out, _ = bench
    df = pd.read_csv(out / "results.csv", keep_default_na=False)
    for col in ("scenario", "n", "source", "seed", "method", "score", "metric", "value", "attribution"):
        assert col in df.columns
    assert set(df["method"]) == {"multi", "single", "vlsm", "svr"}
    assert {"r2", "R2", "pr_auc", "cdc", "peak_distance_mm", "seconds"} <= set(df["metric"])
    assert set(df["scenario"]) == {"linear", "or"} and set(df["n"]) == {40}
    assert set(df.loc[df["method"].isin(["multi", "single"]) & (df["metric"] == "pr_auc"),
                      "attribution"]) == {"ig", "occlusion"}
    assert not ((df["method"] == "vlsm") & (df["metric"] == "r2")).any()  # VLSM does not predict
    checked = 0
    for _, row in df.iterrows():
        m = json.loads((out / "cells" / row["cell"] / "study" / "metrics.json").read_text())
        assert m["config"]["scores"]["scenario"] == row["scenario"]
        assert m["config"]["models"]["seed"] == row["seed"]
        if row["metric"] in ("r2", "R2", "mse"):
            key = {"r2": "r2_pearson", "R2": "r2", "mse": "mse"}[row["metric"]]
            expected = m["prediction"][row["method"]][row["score"]][key]
        elif row["metric"] == "seconds":
            t = m["timings_s"]
            expected = (t[f"train_{row['method']}"] + t[f"explain_{row['method']}"]
                        if row["method"] in ("multi", "single") else t[row["method"]])
        else:
            name = f"{row['method']}_{row['attribution']}" if row["attribution"] else row["method"]
            expected = m["localization"][name][row["score"]][row["metric"]]
        assert row["value"] == pytest.approx(expected), row.to_dict()
        checked += 1
    assert checked == len(df) > 50
    # The 'or' score's truth is the union of its two ROIs.
    m = json.loads((out / "cells" / "or-n40-toy-noise0-vol0-seed0" / "study" / "evaluation.json").read_text())
    assert m["results"]["vlsm"]["score_1"]["mask"]["roi_voxels"] == 2


def test_cells_table_and_page(bench):
    out, _ = bench
    cells = pd.read_csv(out / "cells.csv")
    assert set(cells["cell"]) == CELLS and (cells["status"] == "ok").all()
    assert (cells["seconds"] > 0).all() and (cells["peak_rss_mb"] > 50).all()
    assert (cells["cpu_seconds"] > 0).all()
    # A finished cell keeps its models' weights, not the resume-only checkpoints.
    assert list(out.glob("cells/*/study/train/*/**/best.ckpt"))
    assert not list(out.glob("cells/*/study/train/**/last.ckpt"))
    html = (out / "benchmark.html").read_text()
    assert html.count('src="data:image/png;base64,') == 2
    for text in ("r² and PR-AUC against N", "Best method per scenario", "linear:", "or:", "cannot be judged"):
        assert text in html
    meta = json.loads((out / "benchmark.json").read_text())
    assert meta["jobs"] == 2 and "torch" in meta["versions"]


def test_rerun_skips_finished_cells(bench, toy_source, monkeypatch):
    out, _ = bench
    run_benchmark(toy_config(toy_source), out, verbose=False)  # whatever ran before, now cached

    def boom(*args, **kwargs):
        raise AssertionError("a finished cell was run again")

    monkeypatch.setattr(_runner, "launch_cell", boom)
    res = run_benchmark(toy_config(toy_source), out, verbose=False)
    assert res["ran"] == [] and set(res["skipped"]) == CELLS
    assert set(res["results"]["cell"]) == CELLS


def test_changed_setting_reruns_the_cell_but_reuses_its_study_stages(bench, toy_source):
    out, _ = bench
    cfg = toy_config(toy_source, permutations=7)
    cfg["grid"]["scenarios"] = ["linear"]
    train = out / "cells" / "linear-n40-toy-noise0-vol0-seed0" / "study" / "stages" / "train_multi.json"
    before = train.stat().st_mtime_ns
    res = run_benchmark(cfg, out, verbose=False)
    assert res["ran"] == ["linear-n40-toy-noise0-vol0-seed0"]
    assert train.stat().st_mtime_ns == before  # the study skipped training
    study = out / "cells" / "linear-n40-toy-noise0-vol0-seed0" / "study"
    assert json.loads((study / "metrics.json").read_text())["config"]["classical"]["permutations"] == 7


def test_dask_local_cluster(bench, toy_source):
    distributed = pytest.importorskip("dask.distributed")
    out, _ = bench
    cfg = toy_config(toy_source, permutations=5)
    cfg["grid"]["scenarios"] = ["or"]
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        res = run_benchmark(cfg, out, dask_scheduler=cluster.scheduler_address, verbose=False)
        address = cluster.scheduler_address
    assert res["ran"] == ["or-n40-toy-noise0-vol0-seed0"]
    assert "Dask" in launcher(out, "or-n40-toy-noise0-vol0-seed0")  # a Dask worker thread
    meta = json.loads((out / "benchmark.json").read_text())
    assert meta["dask_scheduler"] == address
    df = pd.read_csv(out / "results.csv")
    assert set(df["method"]) == {"multi", "single", "vlsm", "svr"}


def test_failed_cells_are_reported_and_retried(tmp_path, toy_source, capsys):
    """A cell whose ROIs cannot fit fails alone; the run writes its tables, then errors."""
    cfg = toy_config(toy_source, min_patients_fraction=0.9)
    cfg["grid"]["scenarios"] = ["linear"]
    with pytest.raises(DeepLSMError, match=r"1 of 1 cells failed \(first: linear-n40.*only 0 of 1 ROIs fit"):
        run_benchmark(cfg, tmp_path / "out", verbose=False)
    cells = pd.read_csv(tmp_path / "out" / "cells.csv")
    assert cells["status"].tolist() == ["failed"] and "ROIs fit" in cells["error"][0]
    assert (tmp_path / "out" / "benchmark.html").exists()


def test_too_few_subjects_leaves_the_cell_out(tmp_path, toy_source):
    cfg = toy_config(toy_source)
    cfg["grid"]["n"] = [80]
    res = run_benchmark(cfg, tmp_path / "out", verbose=False)
    assert set(res["too_few_subjects"]) == {f"{s}-n80-toy-noise0-vol0-seed0" for s in ("linear", "or")}
    assert res["ran"] == [] and res["results"].empty


@pytest.mark.parametrize(("toml", "message"), [
    ("[grids]\n", "unknown section [grids]"),
    ('[grid]\nscenarios = ["xor"]\n', "grid.scenarios: unknown scenario 'xor'"),
    ("[grid]\nn = [5]\n", "grid.n: every N must be an integer >= 20"),
    ('[grid]\nsources = ["mine"]\n', "grid.sources: 'mine' is not defined in [sources]"),
    ('[grid]\nsources = ["mine"]\n[sources]\nmine = "no/such/folder"\n', "lesion path does not exist"),
    ("[study.cohort]\nn_subjects = 50\n", "study.cohort.n_subjects is set per cell by the benchmark"),
    ('[study.scores]\nscenario = "and"\n', "study.scores.scenario is set per cell by the benchmark"),
    ("[study.models]\nepochs = 3\n", "unknown setting models.epochs"),
    ("[grid\n", "not valid TOML"),
])
def test_door_checks(tmp_path, capsys, toml, message):
    path = tmp_path / "bench.toml"
    path.write_text(toml)
    out = tmp_path / "out"
    assert main(["benchmark", "--config", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deeplsm: error: ") and message in err and err.count("\n") == 1, err
    assert not out.exists()


def test_dask_missing_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_dask(name, *args, **kwargs):
        if name.startswith("dask"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    with pytest.raises(DeepLSMError, match=r"needs dask.distributed: pip install 'deeplsm\[benchmark\]'"):
        _runner._dask_client("tcp://127.0.0.1:1")


def test_unreachable_scheduler_fails_before_any_output(tmp_path, toy_source, monkeypatch):
    pytest.importorskip("dask.distributed")
    monkeypatch.setattr(_runner, "DASK_CONNECT_TIMEOUT", "2s")
    cfg = toy_config(toy_source)
    with pytest.raises(DeepLSMError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"):
        run_benchmark(cfg, tmp_path / "out", dask_scheduler="tcp://127.0.0.1:9", verbose=False)
    assert not (tmp_path / "out").exists()


def test_cli_threads_sets_the_torch_threads_of_every_cell(tmp_path, monkeypatch, capsys):
    import deeplsm.benchmark as bench
    from deeplsm.cli import main

    seen = {}

    def fake_run(cfg, out, **kw):
        seen["threads"] = cfg["cells"]["threads"]
        raise SystemExit(0)

    monkeypatch.setattr(bench, "run_benchmark", fake_run)
    with pytest.raises(SystemExit):
        main(["benchmark", "--quick", "--threads", "1", "--out", str(tmp_path / "b")])
    assert seen["threads"] == 1
    with pytest.raises(SystemExit):
        main(["benchmark", "--quick", "--out", str(tmp_path / "b")])
    assert seen["threads"] is None  # default: cores / --jobs, decided by the runner
    with pytest.raises(SystemExit) as err:
        main(["benchmark", "--quick", "--threads", "0", "--out", str(tmp_path / "b")])
    assert err.value.code == 2 and "--threads" in capsys.readouterr().err
