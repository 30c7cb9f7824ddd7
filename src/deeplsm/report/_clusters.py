"""The report's cluster section: the top clusters of every group map, one table per score."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping

import pandas as pd

from deeplsm.evaluate import clusters_path

TOP = 3


def _cell(v, fmt: str) -> str:
    if v is None or (isinstance(v, float) and v != v) or v is pd.NA:
        return "–"
    return format(v, fmt)


def clusters_html(map_paths: Mapping[str, Mapping[str, str]], outputs: list[str],
                  top: int = TOP) -> str:
    """HTML section with, for each score, the ``top`` clusters of every method's map.

    Parameters
    ----------
    map_paths : mapping of method -> output -> path of a normalised map
        Each map's table is read from ``<map name>_clusters.tsv`` next to it (written by the
        study's ``clusters`` stage); maps without one are left out.
    outputs : list of str
        Score names, in report order.
    top : int, default=3

    Returns
    -------
    str (empty when no table exists)
    """
    tables: dict[str, dict[str, pd.DataFrame]] = {}
    settings = None
    for method, per in map_paths.items():
        for output, path in per.items():
            tsv = clusters_path(path)
            if not tsv.is_file():
                continue
            t = pd.read_csv(tsv, sep="\t", na_values=["n/a"], keep_default_na=False)
            tables.setdefault(output, {})[method] = t[t["peak"] == 0].head(top)
            if settings is None and tsv.with_suffix(".json").is_file():
                settings = json.loads(tsv.with_suffix(".json").read_text())
    if not tables:
        return ""
    has_label = any("label" in t.columns for per in tables.values() for t in per.values())
    intro = ("Top clusters of each normalised group map: face-connected voxels above "
             f"{html.escape(str(settings.get('threshold_rule', '')))} of at least "
             f"{settings.get('min_volume_mm3', 0):g} mm³, ordered by peak"
             if settings else "Top clusters of each normalised group map")
    parts = ["<h2>Clusters and peaks</h2>",
             f"<p>{intro}; peak coordinates in MNI mm. The full tables, with sub-peaks and "
             "centres of mass, are <code>&lt;map&gt;_clusters.tsv</code> next to each map.</p>"]
    header = ["method", "cluster", "size (mm³)", "voxels", "peak", "peak x, y, z (mm)"]
    if has_label:
        header += ["label at peak", "regions"]
    for output in [o for o in outputs if o in tables] + [o for o in tables if o not in outputs]:
        rows = []
        for method, t in tables[output].items():
            if t.empty:
                rows.append([html.escape(method), "none above threshold"] + [""] * (len(header) - 2))
                continue
            for _, r in t.iterrows():
                row = [html.escape(method), str(int(r["cluster"])), _cell(r["size_mm3"], ".0f"),
                       _cell(r["size_voxels"], ".0f"), _cell(r["peak_value"], ".3g"),
                       ", ".join(f"{r[c]:.0f}" for c in ("x_mm", "y_mm", "z_mm"))]
                if has_label:
                    row += [html.escape(str(r.get("label", "")) if pd.notna(r.get("label")) else "–"),
                            html.escape(str(r.get("cluster_labels", ""))
                                        if pd.notna(r.get("cluster_labels")) else "–")]
                rows.append(row)
        parts.append(f"<h3>{html.escape(output)}</h3>" + _html_table(header, rows))
    return "".join(parts)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows]
    return "".join(out) + "</table>"

