"""``deeplsm vlsm`` and ``deeplsm svr`` end to end on tiny NIfTI cohorts."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from deeplsm.cli import main
from tests.classical._brute import brute_force_svr, brute_force_vlsm_t

LESYMAP = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "lesymap-lesions"


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    n, shape = 30, (7, 8, 9)
    les = tmp_path / "lesions"
    les.mkdir()
    data = (rng.random((n, *shape)) < 0.3).astype(np.uint8)
    ids = [f"sub-{i:02d}" for i in range(n)]
    for sid, d in zip(ids, data):
        nib.save(nib.Nifti1Image(d.astype(np.float32), np.eye(4)), les / f"{sid}_lesion.nii.gz")
    y1 = -2.0 * data[:, 3, 4, 5] + rng.normal(size=n)
    y2 = rng.normal(size=n)
    pd.DataFrame({"subject": ids, "naming": y1, "motor score": y2}).to_csv(tmp_path / "scores.csv",
                                                                        index=False)
    pd.DataFrame({"subject": ids, "age": rng.normal(60, 10, n)}).to_csv(tmp_path / "cov.csv", index=False)
    return tmp_path


def _run(files, *extra):
    return main(["vlsm", "--lesions", str(files / "lesions"), "--scores", str(files / "scores.csv"),
                 "--out", str(files / "out"), "--quiet", "--min-subjects", "3", *extra])


def test_vlsm_writes_maps_and_summary(files):
    assert _run(files, "--permutations", "49", "--test", "bm") == 0
    out = files / "out"
    for stem in ("naming", "motor_score"):
        for suffix in ("stat", "z", "p", "p_fdr", "p_fwe", "thresholded"):
            img = nib.load(out / f"{stem}_{suffix}.nii.gz")
            assert img.shape == (7, 8, 9)
            np.testing.assert_array_equal(img.affine, np.eye(4))
    assert nib.load(out / "mask.nii.gz").get_fdata().sum() > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["test"] == "bm"
    assert set(summary["outputs"]) == {"naming", "motor score"}
    assert "numpy" in summary["versions"]
    assert summary["outputs"]["naming"]["files"]["stat"] == "naming_stat.nii.gz"
    stat = nib.load(out / "naming_stat.nii.gz").get_fdata()
    assert stat[3, 4, 5] < 0  # lesions at (3, 4, 5) lower the naming score
    assert not [p for p in files.iterdir() if p.name.startswith(".out")]


def test_vlsm_regression_with_covariates_and_fraction(files):
    rc = _run(files, "--test", "regression", "--covariates", str(files / "cov.csv"),
              "--volume-correction", "both", "--permutations", "0", "--outputs", "naming")
    assert rc == 0
    assert sorted(p.name for p in (files / "out").glob("naming_*.nii.gz")) == [
        "naming_p.nii.gz", "naming_p_fdr.nii.gz", "naming_stat.nii.gz", "naming_thresholded.nii.gz",
        "naming_z.nii.gz"]
    assert main(["vlsm", "--lesions", str(files / "lesions"), "--scores", str(files / "scores.csv"),
                 "--out", str(files / "out2"), "--quiet", "--min-subjects", "0.1",
                 "--permutations", "0"]) == 0


def _inputs(files):
    """The lesion maps (subjects in file order) and the score table the CLI reads."""
    paths = sorted((files / "lesions").glob("sub-*_lesion.nii.gz"))
    data = np.stack([np.asarray(nib.load(p).dataobj) > 0 for p in paths]).astype(np.uint8)
    scores = pd.read_csv(files / "scores.csv").set_index("subject")
    assert list(scores.index) == [p.name.split("_")[0] for p in paths]
    return data, scores


def _counts(path, mask, n_perm):
    """Exceedance counts from a written p-value map: p = (1 + count) / (1 + n_perm)."""
    p = np.asarray(nib.load(path).dataobj, dtype=np.float64).ravel()[mask]
    return np.rint(p * (n_perm + 1)).astype(int) - 1


def test_vlsm_cluster_and_cfwer(files):
    """The written cluster-FWE, CFWER and FWE maps equal a brute-force permutation loop over the
    same permutations (seed 0 for the first output)."""
    data, scores = _inputs(files)
    out = files / "out"
    assert _run(files, "--permutations", "19", "--correction", "cluster", "--cluster-p", "0.05",
                "--outputs", "naming") == 0
    ref = brute_force_vlsm_t(data, scores["naming"].to_numpy(), min_subjects=3, seed=0,
                             n_permutations=19, cfwer_v=3, cluster_p=0.05)
    mask = ref["mask"]
    np.testing.assert_array_equal(np.asarray(nib.load(out / "mask.nii.gz").dataobj).ravel() > 0, mask)
    np.testing.assert_allclose(np.asarray(nib.load(out / "naming_stat.nii.gz").dataobj).ravel()[mask],
                               ref["t"], rtol=1e-5, atol=1e-6)
    assert ref["n_clusters"] >= 2 and (ref["p_cluster"] < 1).any()
    np.testing.assert_array_equal(_counts(out / "naming_p_cluster.nii.gz", mask, 19),
                                  _counts_of(ref["p_cluster"], 19))
    np.testing.assert_array_equal(_counts(out / "naming_p_fwe.nii.gz", mask, 19),
                                  _counts_of(ref["p_fwe"], 19))
    assert _run(files, "--overwrite", "--permutations", "19", "--correction", "cfwer", "--cfwer-v", "3",
                "--outputs", "naming") == 0
    np.testing.assert_array_equal(_counts(out / "naming_p_cfwer.nii.gz", mask, 19),
                                  _counts_of(ref["p_cfwer"], 19))
    assert (_counts_of(ref["p_cfwer"], 19) < _counts_of(ref["p_fwe"], 19)).any()  # v = 3 matters
    assert not (out / "naming_p_cluster.nii.gz").exists()  # the folder was replaced


def _counts_of(p, n_perm):
    return np.rint(np.asarray(p) * (n_perm + 1)).astype(int) - 1


def test_svr_writes_maps(files):
    rc = main(["svr", "--lesions", str(files / "lesions"), "--scores", str(files / "scores.csv"),
               "--out", str(files / "svr"), "--quiet", "--min-subjects", "3", "--permutations", "20",
               "--outputs", "naming", "--correction", "fwe"])
    assert rc == 0
    for suffix in ("stat", "p", "p_fwe", "thresholded"):
        assert nib.load(files / "svr" / f"naming_{suffix}.nii.gz").shape == (7, 8, 9)
    s = json.loads((files / "svr" / "summary.json").read_text())
    assert s["outputs"]["naming"]["n_support_vectors"] > 0
    # values: sklearn's RBF SVR refitted from scratch, for the map and for every permutation
    data, scores = _inputs(files)
    ref = brute_force_svr(data, scores["naming"].to_numpy(), min_subjects=3, seed=0, n_permutations=20)
    mask = ref["mask"]
    beta = np.asarray(nib.load(files / "svr" / "naming_stat.nii.gz").dataobj, dtype=np.float64).ravel()
    np.testing.assert_allclose(beta[mask], ref["beta"], atol=1e-4)
    assert np.abs(beta[~mask]).max() == 0
    for suffix, key in (("p", "p_counts"), ("p_fwe", "p_fwe_counts")):
        got = _counts(files / "svr" / f"naming_{suffix}.nii.gz", mask, 20)
        lo, hi = ref[key]
        assert np.all((lo <= got) & (got <= hi)), suffix
        assert (lo < 20).any() and (hi > 0).any()  # not trivially all or nothing
    thresholded = np.asarray(nib.load(files / "svr" / "naming_thresholded.nii.gz").dataobj).ravel()
    p_fwe = np.asarray(nib.load(files / "svr" / "naming_p_fwe.nii.gz").dataobj).ravel()
    np.testing.assert_array_equal(thresholded[mask] != 0, p_fwe[mask] <= 0.05)


@pytest.mark.parametrize(("extra", "message"), [
    (["--min-subjects", "29"], "no voxel is lesioned in at least 29 and spared in at least 29 of the 30"),
    (["--outputs", "memory"], "missing score column"),
    (["--volume-correction", "dtlvc"], "needs test='regression'"),
    (["--test", "liebermeister"], "binary scores"),
    (["--permutations", "0", "--correction", "fwe"], "needs n_permutations > 0"),
])
def test_vlsm_bad_input_fails_cleanly(files, capsys, extra, message):
    args = ["vlsm", "--lesions", str(files / "lesions"), "--scores", str(files / "scores.csv"),
            "--out", str(files / "out"), "--quiet", *extra]
    if "--min-subjects" not in extra:
        args += ["--min-subjects", "3"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("deeplsm: error: ") and message in err
    assert not (files / "out").exists()
    assert not [p for p in files.iterdir() if p.name.startswith(".out")]


def test_missing_subject_score_fails_cleanly(files, capsys):
    table = pd.read_csv(files / "scores.csv").iloc[:-2]
    table.to_csv(files / "short.csv", index=False)
    rc = main(["svr", "--lesions", str(files / "lesions"), "--scores", str(files / "short.csv"),
               "--out", str(files / "svr"), "--quiet"])
    assert rc == 2
    assert "2 of 30 lesion subjects have no score" in capsys.readouterr().err
    assert not (files / "svr").exists()


@pytest.mark.skipif(not LESYMAP.is_dir(), reason="shared LESYMAP lesions not available")
def test_vlsm_on_real_lesymap_masks(tmp_path):
    """First 40 real 1 mm masks, resampled to 6 mm, BM with 20 permutations."""
    paths = sorted(LESYMAP.glob("Subject_*.nii.gz"))[:40]
    table = tmp_path / "lesions.csv"
    pd.DataFrame({"subject": [p.name[:11] for p in paths], "path": [str(p) for p in paths]}).to_csv(
        table, index=False)
    rng = np.random.default_rng(1)
    pd.DataFrame({"subject": [p.name[:11] for p in paths], "score": rng.normal(size=40)}).to_csv(
        tmp_path / "scores.csv", index=False)
    rc = main(["vlsm", "--lesions", str(table), "--voxel-size", "6", "--grid", "native",
               "--scores", str(tmp_path / "scores.csv"), "--test", "bm", "--permutations", "20",
               "--min-subjects", "0.1", "--out", str(tmp_path / "out"), "--quiet"])
    assert rc == 0
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["outputs"]["score"]["min_subjects_applied"] == 4
    assert s["outputs"]["score"]["n_tested_voxels"] > 100


def _ridge(files, *extra, out="ridge"):
    return main(["ridge", "--lesions", str(files / "lesions"), "--scores", str(files / "scores.csv"),
                 "--out", str(files / out), "--quiet", "--min-subjects", "3", *extra])


def test_ridge_writes_maps_matching_the_estimator(files):
    from deeplsm.classical import RidgeLSM
    from deeplsm.cohort import load_lesions, load_scores

    assert _ridge(files, "--permutations", "20", "--correction", "fwe") == 0
    out = files / "ridge"
    for stem in ("naming", "motor_score"):
        for suffix in ("stat", "p", "p_fwe", "thresholded"):
            img = nib.load(out / f"{stem}_{suffix}.nii.gz")
            assert img.shape == (7, 8, 9)
            np.testing.assert_array_equal(img.affine, np.eye(4))
    s = json.loads((out / "summary.json").read_text())
    assert s["method"] == "ridge" and set(s["outputs"]) == {"naming", "motor score"}
    assert s["config"]["correction"] == "fwe" and "numpy" in s["versions"]
    # the command runs the estimator: same coefficients as RidgeLSM on the same data and seed
    cohort = load_lesions(files / "lesions")
    y = load_scores(files / "scores.csv", cohort.subject_ids)["naming"].to_numpy()
    est = RidgeLSM(min_subjects=3, n_permutations=20, correction="fwe", random_state=0).fit(cohort, y)
    np.testing.assert_allclose(nib.load(out / "naming_stat.nii.gz").get_fdata(), est.beta_, atol=1e-6)
    assert s["outputs"]["naming"]["penalty"] == pytest.approx(est.penalty_)
    assert nib.load(out / "naming_stat.nii.gz").get_fdata()[3, 4, 5] < 0  # lesions there lower naming
    assert not [p for p in files.iterdir() if p.name.startswith(".ridge")]


@pytest.mark.filterwarnings("ignore:ridge. the cross-validated penalty")
def test_ridge_alphas_and_covariates(files):
    assert _ridge(files, "--permutations", "0", "--alphas", "0.5,5", "--covariates",
                  str(files / "cov.csv"), "--volume-correction", "both", "--outputs", "naming") == 0
    s = json.loads((files / "ridge" / "summary.json").read_text())["outputs"]["naming"]
    assert s["alphas"] == [0.5, 5.0] and s["penalty"] in (0.5, 5.0)
    assert sorted(p.name for p in (files / "ridge").glob("naming_*")) == [
        "naming_stat.nii.gz", "naming_stat_clusters.json", "naming_stat_clusters.tsv",
        "naming_thresholded.nii.gz"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--min-subjects", "29"], "no voxel is lesioned in at least 29 and spared in at least 29 of the 30"),
    (["--outputs", "memory"], "missing score column"),
    (["--permutations", "0", "--correction", "fwe"], "needs n_permutations > 0"),
])
def test_ridge_bad_input_fails_cleanly(files, capsys, extra, message):
    args = ["ridge", "--lesions", str(files / "lesions"), "--scores", str(files / "scores.csv"),
            "--out", str(files / "out"), "--quiet", *extra]
    if "--min-subjects" not in extra:
        args += ["--min-subjects", "3"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("deeplsm: error: ") and message in err and "Traceback" not in err
    assert not (files / "out").exists()
    assert not [p for p in files.iterdir() if p.name.startswith(".out")]


@pytest.mark.parametrize("alphas", ["0,1", "a,b", ","])
def test_ridge_bad_alphas_are_usage_errors(files, capsys, alphas):
    with pytest.raises(SystemExit) as exc:
        _ridge(files, "--alphas", alphas)
    assert exc.value.code == 2
    assert "--alphas" in capsys.readouterr().err
    assert not (files / "ridge").exists()


def _atlas(files):
    """Label 1 'left <half>' (x < 3) and 2 'right & rest' on the lesions' (7, 8, 9) grid."""
    lab = np.zeros((7, 8, 9), np.int16)
    lab[:3] = 1
    lab[3:] = 2
    nib.save(nib.Nifti1Image(lab, np.eye(4)), files / "atlas.nii.gz")
    (files / "atlas.tsv").write_text("index\tname\n1\tleft <half>\n2\tright & rest\n")
    return ["--atlas", str(files / "atlas.nii.gz"), "--atlas-labels", str(files / "atlas.tsv")]


def test_vlsm_cluster_tables_are_the_significant_clusters(files):
    from scipy import ndimage

    assert _run(files, "--permutations", "0", "--correction", "none", "--alpha", "0.2",
                *_atlas(files)) == 0
    out = files / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["outputs"]["naming"]["files"]["stat_clusters"] == "naming_stat_clusters.tsv"
    for stem in ("naming", "motor_score"):
        thr = nib.load(out / f"{stem}_thresholded.nii.gz").get_fdata()
        stat = nib.load(out / f"{stem}_stat.nii.gz").get_fdata()
        # independent: face-connected components of the significant voxels, by sign
        want = []
        for sign in (1, -1):
            lab, n = ndimage.label(sign * thr > 0)
            want += [(sign, int((lab == k).sum()), float(np.abs(stat[lab == k]).max()))
                     for k in range(1, n + 1)]
        for suffix in ("stat", "z"):
            t = pd.read_csv(out / f"{stem}_{suffix}_clusters.tsv", sep="\t", na_values=["n/a"],
                            keep_default_na=False)
            main_rows = t[t["peak"] == 0]
            assert sorted(main_rows["size_voxels"]) == sorted(w[1] for w in want)
            if suffix == "stat":
                got = sorted(zip(main_rows["sign"].map({"+": 1, "-": -1}), main_rows["size_voxels"],
                                 main_rows["peak_value"].abs()))
                np.testing.assert_allclose(np.array(got), np.array(sorted(want)), rtol=1e-5)
            assert set(t["label"].dropna()) <= {"left <half>", "right & rest"}
        side = json.loads((out / f"{stem}_stat_clusters.json").read_text())
        assert side["clusters_of"] == "significant voxels" and side["min_volume_mm3"] == 0
    # the planted voxel (3, 4, 5) lowers naming: it is a negative cluster, in region 2
    t = pd.read_csv(out / "naming_stat_clusters.tsv", sep="\t")
    hit = t[(t["i"] == 3) & (t["j"] == 4) & (t["k"] == 5)]
    assert len(hit) == 1 and hit["sign"].item() == "-" and hit["label"].item() == "right & rest"


def test_relabel_classical_folder_and_svr_without_test(files):
    from scipy import ndimage

    from deeplsm.classical import write_cluster_tables
    from deeplsm.evaluate import load_atlas

    rc = main(["svr", "--lesions", str(files / "lesions"), "--scores", str(files / "scores.csv"),
               "--out", str(files / "svr"), "--quiet", "--min-subjects", "3", "--permutations", "0",
               "--outputs", "naming"])
    assert rc == 0
    # no permutations, no test: the descriptive default (|beta| > half its maximum, >= 100 mm³)
    side = json.loads((files / "svr" / "naming_stat_clusters.json").read_text())
    assert side["clusters_of"].startswith("descriptive") and side["threshold_rule"] == "0.5 x max|value|"
    beta = nib.load(files / "svr" / "naming_stat.nii.gz").get_fdata()
    t = pd.read_csv(files / "svr" / "naming_stat_clusters.tsv", sep="\t")
    sizes = [np.bincount(ndimage.label(s * beta > 5.0)[0].ravel())[1:] for s in (1, -1)]
    assert sorted(t.loc[t["peak"] == 0, "size_voxels"]) == sorted(
        int(n) for per in sizes for n in per if n >= 100)
    # a vlsm folder written without an atlas, relabelled afterwards
    assert _run(files, "--permutations", "0", "--correction", "none", "--alpha", "0.2",
                "--outputs", "naming") == 0
    before = pd.read_csv(files / "out" / "naming_stat_clusters.tsv", sep="\t")
    assert "label" not in before.columns and len(before) > 0
    _atlas(files)
    written = write_cluster_tables(files / "out", load_atlas(files / "atlas.nii.gz", files / "atlas.tsv"))
    assert sorted(p.name for p in written) == ["naming_stat_clusters.tsv", "naming_z_clusters.tsv"]
    after = pd.read_csv(written[0], sep="\t")
    pd.testing.assert_frame_equal(after[before.columns], before)
    assert after["label"].notna().all()


def test_atlas_options_fail_cleanly(files, capsys):
    assert _run(files, "--atlas", str(files / "lesions" / "sub-00_lesion.nii.gz")) == 2
    assert "--atlas and --atlas-labels go together" in capsys.readouterr().err
    (files / "bad.tsv").write_text("a,b\n1,x\n")
    args = _atlas(files)
    args[-1] = str(files / "bad.tsv")
    assert _run(files, *args) == 2
    assert "needs the columns 'index' and 'name'" in capsys.readouterr().err
    assert not (files / "out").exists()
