"""The benchmark's pieces without running cells: tidy rows, means, the summary, the page's
escaping, subject draws, pools and the built-in grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplsm.benchmark import (
    HEADLINE_ATTRIBUTION,
    cells,
    headline_means,
    load_bench_config,
    make_bench_config,
    quick_config,
    tidy_metrics,
)
from deeplsm.benchmark._html import render_html
from deeplsm.benchmark._sources import draw_subjects, prepare_pool
from deeplsm.benchmark._summary import summarise
from deeplsm.simulate import SCENARIOS
from tests.conftest import LESYMAP_DIR

METRICS = {
    "prediction": {
        "multi": {"score_1": {"mse": 0.01, "r2_pearson": 0.81, "p_value": 1e-9, "r2": 0.7}},
        "ridge": {"score_1": {"mse": 0.02, "r2_pearson": 0.9, "p_value": 1e-9, "r2": 0.85}},
    },
    "localization": {
        "multi_ig": {"score_1": {"pr_auc": 0.2, "cdc": 0.1}},
        "multi_occlusion": {"score_1": {"pr_auc": 0.5, "cdc": 0.3, "peak_distance_mm": 4.0}},
        "vlsm": {"score_1": {"pr_auc": 0.8, "cdc": 0.05}},
        "ridge": {"score_1": {"pr_auc": 0.6}},
    },
    "timings_s": {"train_multi": 10.0, "explain_multi": 2.5, "vlsm": 0.5, "ridge": 1.0, "report": 3.0},
}


def test_tidy_rows_from_a_hand_written_metrics_json():
    df = pd.DataFrame(tidy_metrics(METRICS)).set_index(["method", "attribution", "score", "metric"])
    v = df["value"]
    assert v["multi", "", "score_1", "r2"] == 0.81  # squared Pearson r
    assert v["multi", "", "score_1", "R2"] == 0.7  # sklearn R²
    assert v["ridge", "", "score_1", "r2"] == 0.9  # any method metrics.json predicts for
    assert v["multi", "occlusion", "score_1", "pr_auc"] == 0.5
    assert v["multi", "ig", "score_1", "pr_auc"] == 0.2
    assert v["vlsm", "", "score_1", "pr_auc"] == 0.8 and v["ridge", "", "score_1", "pr_auc"] == 0.6
    assert v["multi", "", "all", "seconds"] == 12.5 and v["vlsm", "", "all", "seconds"] == 0.5
    assert v["ridge", "", "all", "seconds"] == 1.0
    assert HEADLINE_ATTRIBUTION == "occlusion"
    assert not df.loc[("multi", "ig", "score_1", "pr_auc"), "headline"]
    assert df.loc[("multi", "occlusion", "score_1", "pr_auc"), "headline"]
    assert ("vlsm", "", "score_1", "r2") not in v.index
    # the configuration's first explain method is the headline one
    ig = pd.DataFrame(tidy_metrics(METRICS, "ig")).set_index(["method", "attribution", "score", "metric"])
    assert ig.loc[("multi", "ig", "score_1", "pr_auc"), "headline"]
    assert not ig.loc[("multi", "occlusion", "score_1", "pr_auc"), "headline"]
    from deeplsm.benchmark import headline_attribution, make_bench_config

    assert headline_attribution(make_bench_config()) == "ig"
    paper_head = make_bench_config({"study": {"explain": {"methods": ["occlusion"]}}})
    assert headline_attribution(paper_head) == "occlusion"


def _results(rows):
    base = {"source": "synthetic", "noise": 0.0, "volume_weight": 0.0, "attribution": "",
            "headline": True, "cell": "c"}
    keys = ("scenario", "n", "seed", "method", "score", "metric", "value")
    return pd.DataFrame([{**base, **dict(zip(keys, r))} for r in rows])


def test_headline_means_average_scores_then_seeds():
    df = _results([
        ("and", 100, 0, "multi", "score_1", "r2", 0.2), ("and", 100, 0, "multi", "score_2", "r2", 0.4),
        ("and", 100, 1, "multi", "score_1", "r2", 0.6), ("and", 100, 1, "multi", "score_2", "r2", 0.6),
    ])
    df.loc[len(df)] = {**df.iloc[0].to_dict(), "headline": False, "value": 99.0}  # not averaged
    m = headline_means(df).iloc[0]
    assert m["mean"] == pytest.approx(0.45)
    assert m["lo"] == pytest.approx(0.3) and m["hi"] == pytest.approx(0.6)
    assert m["seeds"] == 2


def _means(winner_by_scenario: dict[str, str], n=400):
    rows = []
    for sc, win in winner_by_scenario.items():
        for method in ("multi", "ridge", "vlsm"):
            for metric in ("r2", "pr_auc"):
                if method == "vlsm" and metric == "r2":
                    continue
                rows.append((sc, n, 0, method, "score_1", metric, 0.9 if method == win else 0.5))
    return headline_means(_results(rows))


def test_summary_says_where_each_method_wins_and_judges_the_goal():
    s = summarise(_means({"and": "multi", "or": "multi", "tract": "multi", "threshold": "ridge",
                          "linear": "ridge"}))
    assert s["goal"][0].startswith("Goal met: the multi-output CNN is best in both r² and PR-AUC at every "
                                   "N ≥ 400 on 3 of the 4 non-linear scenarios measured (and, or, tract)")
    assert "linear, r²: the multi-output CNN is at most 0.40 below the best" in s["goal"][1]
    assert "threshold: r²: ridge at N = 400 (N = 400: ridge 0.90 against multi 0.50)." in s["scenarios"][3]
    assert "multi: best by r² in 3 of 5, by PR-AUC in 3 of 5 scenario × N cells." in s["methods"]
    assert "vlsm: best by no prediction, by PR-AUC in 0 of 5 scenario × N cells." in s["methods"]
    s = summarise(_means({"and": "vlsm", "or": "multi", "tract": "ridge"}))
    assert s["goal"][0].startswith("Goal not met") and "on 1 of the 3" in s["goal"][0]
    s = summarise(_means({"and": "multi"}, n=200))
    assert "cannot be judged: this grid has no N ≥ 400" in s["goal"][0]


def test_page_escapes_user_strings():
    results = _results([("or", 100, 0, "multi", "score_1", "r2", 0.5),
                        ("or", 100, 0, "multi", "score_1", "pr_auc", 0.5)])
    records = [{"cell": {"scenario": "or", "n": 100, "source": "synthetic", "seed": 0, "noise": 0.0,
                         "volume_weight": 0.0}, "status": "ok", "seconds": 1.0, "peak_rss_mb": 10.0,
                "error": None},
               {"cell": {"scenario": "and", "n": 100, "source": "synthetic", "seed": 0, "noise": 0.0,
                         "volume_weight": 0.0}, "status": "failed", "seconds": 1.0, "peak_rss_mb": None,
                "error": "bad <script>alert(1)</script> & co"}]
    cfg = make_bench_config({"grid": {"sources": ["synthetic"]}})
    cfg["study"]["models"]["preset"] = "<b>x</b>"
    html = render_html(results, records, {"config": cfg, "versions": {}, "seconds": 1.0})
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert '<tr class="failed">' in html


def test_subject_draws_are_seeded_and_nested():
    ids = [f"s{i:03d}" for i in range(300)]
    a, b = draw_subjects(ids, 100, 3), draw_subjects(ids, 200, 3)
    assert a == draw_subjects(ids, 100, 3) and len(set(a)) == 100
    assert set(a) <= set(b) and a == sorted(a)
    assert draw_subjects(ids, 100, 4) != a


def test_synthetic_pool_is_built_once(tmp_path):
    cfg = make_bench_config({"grid": {"n": [20], "sources": ["synthetic"]}, "pool": {"voxel_size": 12.0}})
    path, key, n = prepare_pool(cfg, "synthetic", tmp_path, verbose=False)
    assert n == 20 and path.exists()
    mtime = path.stat().st_mtime_ns
    assert prepare_pool(cfg, "synthetic", tmp_path, verbose=False) == (path, key, 20)
    assert path.stat().st_mtime_ns == mtime
    cfg["pool"]["synthetic_seed"] = 1
    assert prepare_pool(cfg, "synthetic", tmp_path, verbose=False)[1] != key


def test_builtin_grids():
    q = quick_config()
    assert {"linear", "and", "or", "tract"} <= set(q["grid"]["scenarios"])
    assert q["study"]["models"]["modes"] == ["multi", "single"]
    assert {"vlsm", "svr"} <= set(q["study"]["classical"]["methods"])
    assert q["grid"]["sources"] == ["synthetic"]
    d = make_bench_config()
    assert d["grid"]["scenarios"] == list(SCENARIOS) and d["grid"]["n"] == [100, 200, 400]
    assert ("lesymap" in d["grid"]["sources"]) == LESYMAP_DIR.is_dir()
    assert len(cells(d)) == 6 * 3 * len(d["grid"]["sources"])


def test_example_config_loads():
    cfg = load_bench_config(Path(__file__).resolve().parents[2] / "examples" / "bench.toml")
    assert set(cfg["grid"]["scenarios"]) == set(SCENARIOS)
    assert max(cfg["grid"]["n"]) >= 800 and len(cfg["grid"]["seeds"]) >= 3
    assert cfg["pool"]["grid"] == "paper" and cfg["study"]["scores"]["roi_size"] == 8
    assert cfg["study"]["models"]["overrides"]["max_epochs"] == 30


def test_min_patients_follow_n():
    cfg = make_bench_config({"grid": {"sources": ["synthetic"], "n": [100, 400]}})
    from deeplsm.benchmark import Cell, study_config

    s100 = study_config(cfg, Cell("and", 100, "synthetic", 0, 0.0, 0.0), "x.lesions.npz")
    s400 = study_config(cfg, Cell("and", 400, "synthetic", 2, 0.2, 0.5), "x.lesions.npz")
    assert s100["scores"]["min_patients"] == 3 and s400["scores"]["min_patients"] == 10
    assert s400["classical"]["min_subjects"] == 10
    assert s400["scores"]["scenario"] == "and" and s400["scores"]["noise"] == 0.2
    assert s400["scores"]["volume_weight"] == 0.5
    assert s400["models"]["seed"] == s400["classical"]["seed"] == s400["scores"]["seed"] == 2
    assert np.isclose(s400["scores"]["roi_size"], 2)
