"""``benchmarks/bench_gpu.py``: its --tiny run on the CPU, the record it writes as it goes, and
its time limit."""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gpu.py"
STAGES = ("cohort", "simulate", "train_multi", "explain_multi", "train_single", "explain_single",
          "vlsm", "svr", "ridge", "evaluate", "clusters")


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.setenv("CI", "1")
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_run_on_the_cpu(bench, tmp_path):
    out, record = tmp_path / "study", tmp_path / "bench.json"
    rc = bench.main(["--tiny", "--device", "cpu", "--out", str(out), "--json", str(record),
                     "--copy-report", str(tmp_path / "copy" / "report.html")])
    assert rc == 0
    rec = json.loads(record.read_text())
    assert rec["status"] == "finished" and rec["running"] is None and rec["tiny"]
    assert rec["machine"]["device"] == "cpu"
    cfg = rec["config"]
    assert cfg["models"]["modes"] == ["multi", "single"] and cfg["models"]["preset"] == "gpu"
    assert cfg["explain"]["max_subjects"] is None  # every test subject is explained
    assert cfg["cohort"]["n_subjects"] == 60
    # the stage times in the record are the study's own, stage by stage
    for stage in STAGES:
        own = json.loads((out / "stages" / f"{stage}.json").read_text())
        assert rec["stages"][stage]["status"] == "done"
        assert rec["stages"][stage]["seconds"] == pytest.approx(own["seconds"], abs=0.01)
    assert rec["stages"]["report"]["seconds"] >= 0
    res = rec["results"]
    assert set(res["prediction"]) == {"multi", "single", "ridge", "svr"}
    assert {"multi_ig", "multi_gradshap", "multi_occlusion", "single_occlusion", "vlsm",
            "svr", "ridge"} <= set(res["localization"])
    paper = rec["paper_preset"]
    assert paper["fit_seconds_one_epoch"] > 0 and paper["paper_epochs"] == 200
    assert paper["estimate_s_all_models"] == pytest.approx(paper["fit_seconds_one_epoch"] * 200 * 4,
                                                           rel=1e-3, abs=0.1)
    assert (tmp_path / "copy" / "report.html").read_text().startswith("<!")
    # rerun: every stage comes from the study's cache
    rc = bench.main(["--tiny", "--device", "cpu", "--out", str(out), "--json", str(record),
                     "--skip-paper-epoch"])
    rec = json.loads(record.read_text())
    assert rc == 0 and all(rec["stages"][s]["status"] == "cached" for s in STAGES)


def test_time_limit_stops_the_run_and_says_where(bench, tmp_path, monkeypatch):
    record = tmp_path / "bench.json"
    seen = {}

    def slow_study(config, out, verbose=True):
        logging.getLogger("deeplsm").info("stage %-14s running", "cohort")
        seen["during"] = json.loads(record.read_text())  # already on disk while the stage runs
        time.sleep(60)

    monkeypatch.setattr(bench, "run_study", slow_study)
    rc = bench.main(["--tiny", "--device", "cpu", "--out", str(tmp_path / "s"), "--json", str(record),
                     "--time-limit", "0.5"])
    assert rc == bench.TIMED_OUT == 124
    assert seen["during"]["running"] == "cohort" and seen["during"]["status"] == "running"
    rec = json.loads(record.read_text())
    assert rec["status"] == "timed_out" and rec["running"] == "cohort"
    assert "time limit of 0.5 s reached" in rec["error"]
    assert rec["stages"]["cohort"]["status"] == "running"


def test_bad_device(bench, tmp_path, capsys):
    assert bench.main(["--tiny", "--device", "banana", "--out", str(tmp_path / "s")]) == 2
    assert "bench_gpu: error: --device must be auto" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
