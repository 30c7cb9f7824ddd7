"""Lesion sources: one cached analysis-grid pool per source, and the cells' reproducible draws."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from deeplsm._utils import write_json
from deeplsm.cohort import LesionCohort, load_lesions

log = logging.getLogger("deeplsm")


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def pool_size(cfg: dict, label: str) -> int | None:
    """Subjects of a synthetic pool (None for a lesion path: every subject found there)."""
    if cfg["sources"][label] != "synthetic":
        return None
    n = cfg["pool"]["synthetic_n"]
    return int(n) if n is not None else max(cfg["grid"]["n"])


def prepare_pool(cfg: dict, label: str, folder: Path, *, verbose: bool = True) -> tuple[Path, str, int]:
    """Build (or reuse) the pool of source ``label`` under ``folder``.

    Returns
    -------
    path : Path
        ``folder/<label>.lesions.npz``.
    key : str
        Hash of everything the pool depends on; a changed setting rebuilds it.
    n_subjects : int
    """
    spec, pool = cfg["sources"][label], cfg["pool"]
    n = pool_size(cfg, label)
    voxel_size = None if pool["grid"] == "paper" else pool["voxel_size"]  # paper: 1.667 mm
    key = _key(spec, voxel_size, pool["grid"], pool["threshold"],
               n, pool["synthetic_seed"] if spec == "synthetic" else None)
    path, rec = folder / f"{label}.lesions.npz", folder / f"{label}.json"
    if path.exists() and rec.exists():
        meta = json.loads(rec.read_text())
        if meta.get("key") == key:
            return path, key, int(meta["n_subjects"])
    log.info("benchmark: building the %s lesion pool", label)
    if spec == "synthetic":
        from deeplsm.synthetic import make_wmh_cohort

        # The synthetic generator works on the MNI brain box; voxel_size None is the paper's grid.
        cohort = make_wmh_cohort(n, voxel_size=voxel_size, random_state=pool["synthetic_seed"],
                                 verbose=verbose)
    else:
        cohort = load_lesions(spec, grid=pool["grid"], voxel_size=voxel_size,
                              threshold=pool["threshold"], verbose=verbose)
    folder.mkdir(parents=True, exist_ok=True)
    cohort.save(path)
    write_json(rec, {"key": key, "source": spec, "n_subjects": cohort.n_subjects,
                     "shape": list(cohort.shape), "voxel_size": list(cohort.voxel_size)})
    return path, key, cohort.n_subjects


def draw_subjects(subject_ids: list[str], n: int, seed: int) -> list[str]:
    """``n`` subjects drawn without replacement, seeded; nested in N for one seed, in pool order.

    The first ``n`` of one seeded permutation of the pool, so the cells of one seed at N = 100
    and N = 200 share their first 100 subjects.
    """
    perm = np.random.default_rng(seed).permutation(len(subject_ids))
    return [subject_ids[i] for i in sorted(perm[:n])]


def write_cell_subjects(pool_path: Path, n: int, seed: int, dest: Path) -> list[str]:
    """Write the cell's subjects as a cohort cache at ``dest``; return their ids."""
    pool = LesionCohort.load(pool_path)
    ids = draw_subjects(list(pool.subject_ids), n, seed)
    dest.parent.mkdir(parents=True, exist_ok=True)
    pool.subset(ids).save(dest)
    return ids
