"""The plain-language reading of a benchmark, generated from its numbers."""

from __future__ import annotations

import pandas as pd

from deeplsm.benchmark._figures import best_method_table

#: The scenarios the issue's goal names: the CNN should be best on at least 3 of them at N >= 400.
NONLINEAR = ("and", "or", "threshold", "tract")
GOAL_N = 400
NAMES = {"r2": "r²", "pr_auc": "PR-AUC"}


def _ns(values) -> str:
    return ", ".join(str(int(v)) for v in values)


def scenario_sentences(means: pd.DataFrame) -> list[str]:
    """Per scenario: which method wins r² and PR-AUC at which N, and by how much at the largest N."""
    out = []
    for sc in dict.fromkeys(means["scenario"]):
        d = means[means["scenario"] == sc]
        parts = []
        for metric in ("r2", "pr_auc"):
            best = best_method_table(d, metric)
            if best.empty:
                continue
            wins = best.groupby("method", sort=False)["n"].apply(list)
            text = "; ".join(f"{m} at N = {_ns(ns)}" for m, ns in wins.items())
            n_max = best["n"].max()
            at = d[(d["metric"] == metric) & (d["n"] == n_max)].sort_values("mean", ascending=False)
            top = at.iloc[0]
            detail = f"{top['method']} {top['mean']:.2f}"
            if len(at) > 1:
                nxt = at.iloc[1]
                detail += f" against {nxt['method']} {nxt['mean']:.2f}"
                if top["seeds"] > 1 and top["lo"] <= nxt["mean"]:
                    detail += ", within the seed spread"
            parts.append(f"{NAMES[metric]}: {text} (N = {int(n_max)}: {detail})")
        if parts:
            out.append(f"{sc}: " + ". ".join(parts) + ".")
    return out


def method_sentences(means: pd.DataFrame) -> list[str]:
    """Per method: in how many scenario × N cells it is best by r² and by PR-AUC."""
    counts: dict[str, dict[str, int]] = {}
    totals = {}
    for metric in ("r2", "pr_auc"):
        best = best_method_table(means, metric)
        totals[metric] = len(best)
        for m in best["method"]:
            counts.setdefault(m, {"r2": 0, "pr_auc": 0})[metric] += 1
    methods = sorted(set(means["method"]), key=lambda m: -sum(counts.get(m, {}).values()))
    out = []
    for m in methods:
        c = counts.get(m, {"r2": 0, "pr_auc": 0})
        r2 = f"r² in {c['r2']} of {totals['r2']}" if m in set(means.loc[means["metric"] == "r2", "method"]) \
            else "no prediction"
        out.append(f"{m}: best by {r2}, by PR-AUC in {c['pr_auc']} of {totals['pr_auc']} "
                   "scenario × N cells.")
    return out


def goal_sentences(means: pd.DataFrame) -> list[str]:
    """The issue's goal: the multi-output CNN best in both r² and PR-AUC on at least 3 of and, or,
    threshold and tract at N >= 400, and never far behind on linear."""
    big = means[means["n"] >= GOAL_N]
    if big.empty:
        return [f"The goal (multi-output CNN best in r² and PR-AUC on at least 3 of "
                f"{', '.join(NONLINEAR)} at N ≥ {GOAL_N}) cannot be judged: this grid has no N ≥ {GOAL_N}."]
    won = []
    for sc in NONLINEAR:
        d = big[big["scenario"] == sc]
        if d.empty:
            continue
        ok = all(not (b := best_method_table(d, metric)).empty and (b["method"] == "multi").all()
                 for metric in ("r2", "pr_auc"))
        if ok:
            won.append(sc)
    present = [sc for sc in NONLINEAR if sc in set(big["scenario"])]
    verdict = "met" if len(won) >= 3 else "not met"
    out = [f"Goal {verdict}: the multi-output CNN is best in both r² and PR-AUC at every N ≥ {GOAL_N} "
           f"on {len(won)} of the {len(present)} non-linear scenarios measured"
           + (f" ({', '.join(won)})" if won else "") + " (the goal asks for 3 of and, or, threshold, tract)."]
    lin = big[big["scenario"] == "linear"]
    for metric in ("r2", "pr_auc"):
        d = lin[lin["metric"] == metric]
        if d.empty or "multi" not in set(d["method"]):
            continue
        gaps = []
        for n, g in d.groupby("n"):
            best = g["mean"].max()
            multi = g.loc[g["method"] == "multi", "mean"].iloc[0]
            gaps.append((best - multi, n))
        gap, n = max(gaps)
        out.append(f"linear, {NAMES[metric]}: the multi-output CNN is at most {gap:.2f} below the best "
                   f"method at N ≥ {GOAL_N} (largest gap at N = {int(n)}).")
    return out


def summarise(means: pd.DataFrame) -> dict[str, list[str]]:
    """Sentences for the page: ``scenarios``, ``methods`` and ``goal``."""
    if means.empty:
        return {"scenarios": ["No finished cell: nothing to summarise."], "methods": [], "goal": []}
    return {"scenarios": scenario_sentences(means), "methods": method_sentences(means),
            "goal": goal_sentences(means)}
