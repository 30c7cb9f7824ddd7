"""Scenario scores against brute-force computations from the lesion maps and hand-written ROIs,
the ground-truth label images, noise and the volume confound, and byte-identical ``linear``."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from deeplsm.cli import main
from deeplsm.cohort import LesionCohort
from deeplsm.exceptions import DeepLSMError
from deeplsm.simulate import (
    SCENARIOS,
    critical_mass,
    cut_share,
    mixture_weights,
    overlap_fractions,
    pair_rule,
    select_roi_centres,
    select_roi_pairs,
    simulate,
    simulate_scores,
    tract_fibres,
)

SHAPE = (14, 15, 16)


@pytest.fixture(scope="module")
def cohort() -> LesionCohort:
    """80 subjects with random boxes on a (14, 15, 16) grid at 2 mm."""
    rng = np.random.default_rng(3)
    data = np.zeros((80, *SHAPE), np.uint8)
    for i in range(80):
        for _ in range(rng.integers(1, 3)):
            c = rng.integers([3, 3, 3], [11, 12, 13])
            r = rng.integers(2, 6, size=3)
            data[i, max(0, c[0] - r[0]):c[0] + r[0], max(0, c[1] - r[1]):c[1] + r[1],
                 max(0, c[2] - r[2]):c[2] + r[2]] = 1
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    aff[:3, 3] = [-14, -15, -16]
    return LesionCohort([f"s{i}" for i in range(80)], data, aff)


def _fraction(lesion: np.ndarray, roi_voxels: list[tuple[int, int, int]]) -> float:
    """Brute force: lesioned share of the listed voxels, one voxel at a time."""
    hit = 0
    for v in roi_voxels:
        hit += int(lesion[v])
    return hit / len(roi_voxels)


def _voxels(labels: np.ndarray, k: int) -> list[tuple[int, int, int]]:
    return [tuple(int(x) for x in v) for v in np.argwhere(labels == k)]


def _cube(centre, size) -> list[tuple[int, int, int]]:
    lo = [c - size // 2 for c in centre]
    return list(itertools.product(*(range(a, a + size) for a in lo)))


def _sigmoid01(f: float, at: float = 0.25, k: float = 20.0) -> float:
    s = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    return (s(k * (f - at)) - s(-k * at)) / (s(k * (1 - at)) - s(-k * at))


# --- the rules, with ROIs written here ------------------------------------------------------
def test_pair_rules_and_threshold_on_hand_written_rois(cohort):
    labels = np.zeros(SHAPE, np.int16)
    rois = {1: _cube((5, 5, 5), 3), 2: _cube((9, 10, 11), 3), 3: _cube((5, 11, 6), 2),
            4: _cube((10, 5, 10), 2)}
    for k, vox in rois.items():
        for v in vox:
            labels[v] = k
    frac = overlap_fractions(cohort.data, labels)
    and_ = pair_rule(frac, "and")
    or_ = pair_rule(frac, "or")
    thr = critical_mass(frac)
    for i, lesion in enumerate(cohort.data):
        f = {k: _fraction(lesion, vox) for k, vox in rois.items()}
        assert and_[i].tolist() == pytest.approx([min(f[1], f[2]), min(f[3], f[4])])
        assert or_[i].tolist() == pytest.approx([max(f[1], f[2]), max(f[3], f[4])])
        assert thr[i].tolist() == pytest.approx([_sigmoid01(f[k]) for k in (1, 2, 3, 4)], abs=1e-12)
    # Both rules are exercised: some subjects damage one ROI of a pair only.
    assert (and_ != or_).any() and (and_ > 0).any()


def test_critical_mass_is_a_steep_step_from_0_to_1():
    f = np.array([0.0, 0.1, 0.25, 0.4, 1.0])
    v = critical_mass(f)
    assert v[0] == 0.0 and v[-1] == pytest.approx(1.0) and v[2] == pytest.approx(0.5, abs=0.01)
    assert v[1] < 0.06 and v[3] > 0.94
    with pytest.raises(DeepLSMError, match="critical mass"):
        critical_mass(f, at=1.5)


def test_axis_aligned_tube_and_its_fibres_by_hand():
    """A line along x from (2, 5, 5) to (8, 5, 5), radius 1 mm on a 1 mm grid: five parallel
    fibres (the centre line and its four neighbours) plus one-voxel caps on the centre line."""
    shape = (12, 11, 11)
    fib = tract_fibres(shape, np.eye(4), (2, 5, 5), (8, 5, 5), 1.0)
    expected = set()
    lines = [(5, 5), (4, 5), (6, 5), (5, 4), (5, 6)]
    for y, z in lines:
        expected |= {(x, y, z) for x in range(2, 9)}
    expected |= {(1, 5, 5), (9, 5, 5)}  # the rounded caps reach one voxel past each end
    assert {tuple(v) for v in np.argwhere(fib > 0)} == expected
    assert fib.max() == 5
    for y, z in lines:  # one fibre per line
        assert len({int(fib[x, y, z]) for x in range(2, 9)}) == 1
    # Cutting: subject 0 hits the centre line once; 1 hits two side fibres; 2 hits nothing.
    data = np.zeros((3, *shape), np.uint8)
    data[0, 7, 5, 5] = 1
    data[1, 3, 4, 5] = data[1, 8, 5, 6] = data[1, 8, 5, 7] = 1
    data[2, 0, 0, 0] = 1
    np.testing.assert_allclose(cut_share(data, fib), [1 / 5, 2 / 5, 0.0])


def test_tube_geometry_against_brute_force_distances():
    """Oblique tube on an anisotropic grid: membership = distance in mm to the segment."""
    shape = (9, 10, 11)
    aff = np.diag([2.0, 1.5, 1.0, 1.0])
    aff[:3, 3] = [5, -3, 2]
    a, b = np.array([1, 2, 2]), np.array([7, 8, 9])
    where = np.ones(shape, bool)
    where[:, :, 9:] = False
    fib = tract_fibres(shape, aff, a, b, 2.5, where=where)
    A, B = aff[:3, :3] @ a + aff[:3, 3], aff[:3, :3] @ b + aff[:3, 3]
    for ijk in itertools.product(*map(range, shape)):
        p = aff[:3, :3] @ np.array(ijk, float) + aff[:3, 3]
        t = min(1.0, max(0.0, float(np.dot(p - A, B - A) / np.dot(B - A, B - A))))
        d = float(np.linalg.norm(p - (A + t * (B - A))))
        assert (fib[ijk] > 0) == (d <= 2.5 and where[ijk]), ijk


def test_cut_share_against_brute_force(cohort):
    fib = tract_fibres(SHAPE, cohort.affine, (3, 3, 4), (11, 12, 12), 2.0)
    ids = sorted(set(fib[fib > 0].tolist()))
    expected = []
    for lesion in cohort.data:
        cut = 0
        for f in ids:
            cut += any(lesion[tuple(v)] for v in np.argwhere(fib == f))
        expected.append(cut / len(ids))
    np.testing.assert_allclose(cut_share(cohort.data, fib), expected)


def test_mixture_weights_mix_two_or_three_rois():
    w = mixture_weights(4, random_state=0)
    assert w.shape == (4, 4)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    assert sorted((w > 0).sum(axis=1).tolist()) == [2, 2, 3, 3]
    assert (w[w > 0] >= 0.25 / 3).all()
    np.testing.assert_array_equal(w, mixture_weights(4, random_state=0))
    with pytest.raises(DeepLSMError, match="at least 2 ROIs"):
        mixture_weights(1)


# --- every scenario end to end: scores and ground truth ----------------------------------------
def _expected_clean(sim, cohort, scenario):
    """Noise-free scores from the lesion maps and ``sim.labels`` / ``sim.truth``, voxel by voxel."""
    out = np.zeros(sim.scores.shape)
    for i, lesion in enumerate(cohort.data):
        for k, name in enumerate(sim.score_names):
            labs = sim.truth[name]
            f = [_fraction(lesion, _voxels(sim.labels, lab)) for lab in labs]
            if scenario == "linear":
                out[i, k] = f[0]
            elif scenario == "mixture":
                w = np.asarray(sim.params["weights"])[k]
                out[i, k] = sum(w[lab - 1] * fk for lab, fk in zip(labs, f))
            elif scenario == "and":
                out[i, k] = min(f)
            elif scenario == "or":
                out[i, k] = max(f)
            elif scenario == "threshold":
                out[i, k] = _sigmoid01(f[0])
            else:  # tract: share of fibres with a lesioned voxel
                fib = sim.tracts[k]
                ids = sorted(set(fib[fib > 0].tolist()))
                cut = [any(lesion[tuple(v)] for v in np.argwhere(fib == f_)) for f_ in ids]
                out[i, k] = sum(cut) / len(ids)
    return out


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_scores_match_brute_force(cohort, scenario):
    sim = simulate(cohort, scenario=scenario, n_rois=2, roi_size=3, min_patients=5, random_state=1)
    assert sim.scores.shape == (80, 2) and sim.params["scenario"] == scenario
    np.testing.assert_allclose(sim.scores, _expected_clean(sim, cohort, scenario), atol=1e-12)
    assert (sim.scores > 0).any(axis=0).all()  # every score has patients
    again = simulate(cohort, scenario=scenario, n_rois=2, roi_size=3, min_patients=5, random_state=1)
    assert again.scores.tobytes() == sim.scores.tobytes()


@pytest.mark.parametrize("scenario", ["linear", "mixture", "threshold", "and", "or"])
def test_cube_labels_and_truth(cohort, scenario):
    sim = simulate(cohort, scenario=scenario, n_rois=2, roi_size=3, min_patients=5, random_state=2)
    n_labels = 4 if scenario in ("and", "or") else 2
    freq = cohort.frequency_map()
    assert sorted(np.unique(sim.labels).tolist()) == list(range(n_labels + 1))
    for k, c in enumerate(sim.centres_vox, start=1):
        assert set(_voxels(sim.labels, k)) == set(_cube(c, 3))  # whole cube at its centre
        assert freq[sim.labels == k].min() >= 5
    if scenario in ("and", "or"):
        assert sim.truth == {"score_1": [1, 2], "score_2": [3, 4]}
    elif scenario == "mixture":
        w = np.asarray(sim.params["weights"])
        assert sim.truth == {f"score_{k + 1}": [j + 1 for j in np.flatnonzero(w[k])] for k in range(2)}
        assert sim.truth["score_1"] == [1, 2]
    else:
        assert sim.truth == {"score_1": [1], "score_2": [2]}
    assert sim.to_json()["truth_labels"] == sim.truth


def test_and_pairs_are_damaged_together(cohort):
    """Every voxel of a pair's second cube is lesioned in >= min_patients of the subjects who
    damage the first, so >= min_patients subjects have a non-zero 'and' score."""
    for seed in range(4):
        centres = select_roi_pairs(cohort.data, n_pairs=2, roi_size=3, min_patients=6,
                                   colesioned=True, random_state=seed)
        for a, b in (centres[0:2], centres[2:4]):
            hit = [i for i in range(80) if any(cohort.data[i][v] for v in _cube(a, 3))]
            for v in _cube(b, 3):
                assert sum(int(cohort.data[i][v]) for i in hit) >= 6
    # simulate(scenario="and") picks its pairs that way.
    for seed in range(6):
        sim = simulate(cohort, scenario="and", n_rois=2, roi_size=3, min_patients=8, random_state=seed)
        for a, b in (sim.centres_vox[0:2], sim.centres_vox[2:4]):
            hit = [i for i in range(80) if any(cohort.data[i][v] for v in _cube(a, 3))]
            assert min(sum(int(cohort.data[i][v]) for i in hit) for v in _cube(b, 3)) >= 8
    with pytest.raises(DeepLSMError, match="ROI pairs fit"):
        select_roi_pairs(cohort.data, n_pairs=2, roi_size=3, min_patients=79, colesioned=True,
                         random_state=0)


def test_tract_labels_are_tubes_between_the_recorded_ends(cohort):
    sim = simulate(cohort, scenario="tract", n_rois=2, roi_size=3, min_patients=5, random_state=4)
    occurs = cohort.frequency_map() > 0
    radius = sim.params["tract_radius_mm"]
    assert radius == pytest.approx(3.0)  # half the 3-voxel cube side at 2 mm
    taken = np.zeros(SHAPE, bool)
    for k, t in enumerate(sim.params["tracts"], start=1):
        A, B = np.asarray(t["start_mm"]), np.asarray(t["end_mm"])
        assert np.linalg.norm(np.subtract(t["end_vox"], t["start_vox"])) >= 9  # >= 3 cube sides
        expected = set()
        for ijk in itertools.product(*map(range, SHAPE)):
            p = cohort.affine[:3, :3] @ np.array(ijk, float) + cohort.affine[:3, 3]
            s = min(1.0, max(0.0, float(np.dot(p - A, B - A) / np.dot(B - A, B - A))))
            if np.linalg.norm(p - (A + s * (B - A))) <= radius and occurs[ijk] and not taken[ijk]:
                expected.add(ijk)
        assert set(_voxels(sim.labels, k)) == expected
        taken[sim.labels == k] = True
        assert t["n_fibres"] == len(np.unique(sim.tracts[k - 1][sim.tracts[k - 1] > 0]))
    assert sim.truth == {"score_1": [1], "score_2": [2]}


# --- noise and volume confound on every scenario -----------------------------------------------
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("noise", [0.0, 0.2, 0.5])
@pytest.mark.parametrize("volume_weight", [0.0, 0.5])
def test_noise_and_volume_confound(cohort, scenario, noise, volume_weight):
    kw = dict(scenario=scenario, n_rois=2, roi_size=3, min_patients=5, random_state=5)
    clean = simulate(cohort, **kw).scores
    sim = simulate(cohort, noise=noise, volume_weight=volume_weight, clip=False, **kw)
    sd = clean.std(axis=0)
    lv = np.log1p(cohort.lesion_volumes_ml())
    z = (lv - lv.mean()) / (lv.std() + 1e-12)
    resid = sim.scores - clean - volume_weight * sd * z[:, None]
    if noise == 0:
        np.testing.assert_allclose(resid, 0, atol=1e-12)
    else:
        ratio = resid.std(axis=0) / (noise * sd)
        assert ((ratio > 0.7) & (ratio < 1.3)).all(), ratio
    clipped = simulate(cohort, noise=noise, volume_weight=volume_weight, **kw).scores
    np.testing.assert_allclose(clipped, np.clip(sim.scores, 0, 1))


# --- linear is today's behaviour -------------------------------------------------------------
def test_linear_is_byte_identical_to_the_papers_algorithm(cohort):
    """Today's path, written out: seeded ROI choice, Algorithm 1, then noise from the same stream."""
    for kw in ({}, {"noise": 0.2, "volume_weight": 0.3}, {"weights": np.array([[1.0, 2.0], [0.0, 1.0]])}):
        rng = np.random.default_rng(9)
        centres = select_roi_centres(cohort.frequency_map(), n_rois=2, roi_size=3, min_patients=5,
                                     random_state=rng)
        labels = np.zeros(SHAPE, np.int16)
        for k, c in enumerate(centres, start=1):
            for v in _cube(c, 3):
                labels[v] = k
        ref = simulate_scores(overlap_fractions(cohort.data, labels), volumes=cohort.lesion_volumes_ml(),
                              random_state=rng, **kw)
        sim = simulate(cohort, n_rois=2, roi_size=3, min_patients=5, random_state=9, **kw)
        assert sim.scores.tobytes() == ref.tobytes()
        assert simulate(cohort, scenario="linear", n_rois=2, roi_size=3, min_patients=5, random_state=9,
                        **kw).scores.tobytes() == ref.tobytes()
    # With weights, each score's truth is the ROIs it mixes.
    assert sim.truth == {"score_1": [1, 2], "score_2": [2]}


def test_bad_scenario_settings(cohort):
    with pytest.raises(DeepLSMError, match="unknown scenario 'xor'"):
        simulate(cohort, scenario="xor")
    with pytest.raises(DeepLSMError, match="weights apply to the linear and mixture"):
        simulate(cohort, scenario="and", weights=np.eye(2), n_rois=2, roi_size=3, min_patients=5)
    with pytest.raises(DeepLSMError, match="tract radius must be positive"):
        tract_fibres(SHAPE, np.eye(4), (1, 1, 1), (5, 5, 5), 0.0)


# --- the command line ----------------------------------------------------------------------------
def test_cli_scenario(tmp_path, cohort, capsys):
    import json

    from deeplsm.cli._simulate import SCENARIOS as CLI_SCENARIOS

    assert CLI_SCENARIOS == SCENARIOS
    cache = cohort.save(tmp_path / "c.lesions.npz")
    out = tmp_path / "sim"
    assert main(["simulate", "--lesions", str(cache), "--scenario", "or", "--n-rois", "2",
                 "--roi-size", "3", "--min-patients", "5", "--seed", "1", "--out", str(out), "--quiet"]) == 0
    meta = json.loads((out / "simulation.json").read_text())
    assert meta["truth_labels"] == {"score_1": [1, 2], "score_2": [3, 4]}
    assert meta["params"]["scenario"] == "or"
    ref = simulate(cohort, scenario="or", n_rois=2, roi_size=3, min_patients=5, random_state=1)
    import pandas as pd

    np.testing.assert_allclose(pd.read_csv(out / "scores.csv", index_col=0).to_numpy(), ref.scores,
                               rtol=1e-6)
    with pytest.raises(SystemExit):
        main(["simulate", "--lesions", str(cache), "--scenario", "xor", "--out", str(out)])
    capsys.readouterr()
    w = tmp_path / "w.csv"
    w.write_text("1,0\n0,1\n")
    bad = tmp_path / "bad"
    assert main(["simulate", "--lesions", str(cache), "--scenario", "and", "--weights", str(w),
                 "--out", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deeplsm: error: weights apply to the linear and mixture") and err.count("\n") == 1
    assert not bad.exists()
