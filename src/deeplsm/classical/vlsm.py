"""Voxel-based lesion-symptom mapping (VLSM): mass-univariate tests with permutation inference."""

from __future__ import annotations

import numpy as np
from scipy import ndimage, stats
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from deeplsm._docs import fill_doc
from deeplsm._schema import MinSubjects, NonNegativeInt, OpenUnitFloat, PositiveInt, check_param
from deeplsm._utils import check_random_state, progress_disabled
from deeplsm.classical import _stats as S
from deeplsm.classical._common import (
    LesionVolumeRegression,
    check_choice,
    check_covariates,
    check_scores,
    dtlvc_scale,
    lesion_matrix,
    lesion_volumes,
    resolve_volume_correction,
    to_volume,
    volume_regressed,
)
from deeplsm.classical._mask import compress_patches, mask_exclusions, voxel_mask
from deeplsm.exceptions import DeepLSMError

TESTS = ("t", "welch", "bm", "regression", "liebermeister")
CORRECTIONS = ("none", "fdr", "bonferroni", "fwe", "cfwer", "cluster")
_NEEDS_PERMUTATIONS = ("fwe", "cfwer", "cluster")
# permutations per chunk are sized so that one chunk of float32 statistics stays near this
_CHUNK_BYTES = 64 * 2**20


@fill_doc
class MassUnivariateLSM(BaseEstimator):
    """Mass-univariate VLSM: one test per voxel, corrected for the many tests.

    Every statistic is signed so that **positive means the lesioned subjects have higher
    scores** (``t`` is ``scipy.stats.ttest_ind(lesioned, spared)``; ``bm`` is
    ``scipy.stats.brunnermunzel(spared, lesioned)``).

    Parameters
    ----------
    test : {'t', 'welch', 'bm', 'regression', 'liebermeister'}, default='t'
        ``'t'``: pooled-variance t-test. ``'welch'``: Welch's t-test. ``'bm'``: Brunner–Munzel.
        ``'regression'``: t of the lesion status in ``score ~ 1 + covariates + lesion``, permuted by
        Freedman–Lane. ``'liebermeister'``: for binary (0/1) scores, NiiStat's Liebermeister test
        (one-sided Fisher exact test with one added to two diagonal cells); the statistic is z.
    tail : {'two-sided', 'greater', 'less'}, default='two-sided'
        ``'greater'`` tests for higher scores in lesioned subjects, ``'less'`` for lower.
    volume_correction : str, default='none'
        Lesion-volume control, named as LESYMAP (``correctByLesSize``) and svrlsmgui name it:

        * ``'behavior'`` (alias ``'score'``, svrlsmgui ``'Regress on Behavior'``): lesion volume
          regressed out of the score before testing; works with every test but Liebermeister.
        * ``'voxel'`` (alias ``'dtlvc'``, svrlsmgui ``'DTLVC'``): each subject's lesion vector
          divided by the square root of its lesion volume (direct total lesion volume control).
        * ``'both'`` (LESYMAP): ``'behavior'`` and ``'voxel'``.
        * ``'lesion'`` (svrlsmgui ``'Regress on Lesion'``): lesion volume regressed out of every
          voxel's lesion values (:class:`~deeplsm.classical._common.LesionVolumeRegression`).
        * ``'regress_on_both'`` (svrlsmgui ``'Regress on Both'``): ``'behavior'`` and
          ``'lesion'``: volume regressed out of the score and of the lesion maps.

        The lesion variants make the predictor continuous, so they need ``test='regression'``.
        Case, spaces and hyphens are ignored (``'Regress on Both'`` works).
    min_subjects : int or float, default=10
        Test voxels lesioned in at least this many subjects and spared in at least this many. A
        float in (0, 1) is a fraction of the subjects (LESYMAP uses 0.1).
    compress_patches : bool, default=True
        Test voxels with identical subject patterns once (LESYMAP's patches). Results are
        identical; only the speed changes.
    n_permutations : int, default=1000
        Permutations of the scores for the FWE, CFWER and cluster-size nulls. 0 skips them.
    correction : {'none', 'fdr', 'bonferroni', 'fwe', 'cfwer', 'cluster'}, default='fwe'
        Which corrected p-values threshold :attr:`thresholded_`. ``'fwe'``: max statistic;
        ``'cfwer'``: the ``cfwer_v``-th largest statistic (at most ``cfwer_v - 1`` false positive
        voxels with probability ``1 - alpha``); ``'cluster'``: cluster size above a
        cluster-forming threshold of uncorrected ``cluster_p`` (26-connectivity).
    alpha : float, default=0.05
        Significance level of the thresholded map.
    cfwer_v : int, default=1
        ``v`` of CFWER; ``1`` is the ordinary FWE.
    cluster_p : float, default=0.001
        Uncorrected cluster-forming p-value (per tail).
    %(random_state)s
    %(verbose)s

    Attributes
    ----------
    mask_ : ndarray of bool
        Tested voxels, shaped like one lesion map (flat for array input).
    mask_img_ : Nifti1Image or None
    n_min_subjects_ : int
        The subject count that ``min_subjects`` resolved to.
    exclusions_ : dict
        Voxels tested and left out by ``min_subjects`` (and why), and the subjects with no
        lesioned voxel among the tested ones (see :func:`deeplsm.classical._mask.mask_exclusions`).
    n_patterns_ : int
        Distinct lesion patterns among the tested voxels.
    volume_control_ : VolumeControl
        The resolved ``volume_correction`` (canonical ``name``, score and lesion parts).
    statistic_, z_, p_, p_fdr_, p_bonferroni_ : ndarray
        Statistic, its z equivalent, uncorrected, FDR (Benjamini–Hochberg) and Bonferroni p.
        Outside the mask: 0 for statistic and z, 1 for p-values.
    p_fwe_, p_cfwer_, p_cluster_ : ndarray or None
        Permutation-corrected p-values (``None`` where not computed).
    df_ : float, ndarray or None
        Degrees of freedom (per voxel for Welch and Brunner–Munzel, on the tested voxels).
    threshold_ : float
        Critical value of the tail-transformed statistic (``|stat|`` for two-sided) for the
        chosen correction; ``inf`` if unreachable.
    thresholded_ : ndarray
        ``statistic_`` where significant, 0 elsewhere.
    null_max_, null_kth_, null_cluster_ : ndarray or None
        Permutation nulls of the max, ``cfwer_v``-th largest statistic, and max cluster size.
    statistic_img_, z_img_, p_img_, p_fdr_img_, p_fwe_img_, thresholded_img_ : Nifti1Image or None
        NIfTI versions (for LesionCohort input).
    """

    def __init__(self, *, test="t", tail="two-sided", volume_correction="none", min_subjects=10,
                 compress_patches=True, n_permutations=1000, correction="fwe", alpha=0.05,
                 cfwer_v=1, cluster_p=0.001, random_state=None, verbose=False):
        self.test = test
        self.tail = tail
        self.volume_correction = volume_correction
        self.min_subjects = min_subjects
        self.compress_patches = compress_patches
        self.n_permutations = n_permutations
        self.correction = correction
        self.alpha = alpha
        self.cfwer_v = cfwer_v
        self.cluster_p = cluster_p
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------------------------------
    def _check_params(self, has_covariates: bool, is_cohort: bool) -> None:
        check_choice("test", self.test, TESTS)
        check_choice("tail", self.tail, S.TAILS)
        vc = resolve_volume_correction(self.volume_correction)
        check_choice("correction", self.correction, CORRECTIONS)
        check_param("min_subjects", self.min_subjects, MinSubjects)
        check_param("n_permutations", self.n_permutations, NonNegativeInt)
        check_param("alpha", self.alpha, OpenUnitFloat)
        check_param("cfwer_v", self.cfwer_v, PositiveInt)
        if self.correction in _NEEDS_PERMUTATIONS and self.n_permutations == 0:
            raise DeepLSMError(f"correction={self.correction!r} needs n_permutations > 0")
        if vc.continuous_lesions and self.test != "regression":
            raise DeepLSMError(
                f"volume_correction={self.volume_correction!r} makes the lesion predictor "
                f"continuous; it needs test='regression', not test={self.test!r}"
            )
        if has_covariates and self.test != "regression":
            raise DeepLSMError(f"covariates need test='regression', not test={self.test!r}")
        if self.test == "liebermeister" and vc.any:
            raise DeepLSMError("test='liebermeister' takes binary scores; use volume_correction='none'")
        if self.correction == "cluster":
            if not is_cohort:
                raise DeepLSMError("correction='cluster' needs a LesionCohort (a spatial grid)")
            if self.test in ("welch", "bm"):
                raise DeepLSMError(
                    f"correction='cluster' needs a statistic with one null distribution "
                    f"(t, regression, liebermeister), not test={self.test!r}"
                )
            check_param("cluster_p", self.cluster_p, OpenUnitFloat)

    def _engine(self, X, y, covariates):
        if self.test in ("t", "regression"):
            cols = [np.ones(len(y))] + ([] if covariates is None else list(covariates.T))
            return S.RegressionEngine(X, y, np.column_stack(cols))
        if self.test == "welch":
            return S.WelchEngine(X, y)
        if self.test == "bm":
            return S.BrunnerMunzelEngine(X, y)
        return S.LiebermeisterEngine(X, y, self.tail)

    def fit(self, lesions, scores, covariates=None):
        """Test every voxel that passes ``min_subjects``.

        Parameters
        ----------
        lesions : LesionCohort or array-like of shape (n_subjects, n_voxels)
            Binary lesion maps.
        scores : array-like of shape (n_subjects,)
            One behavioural score per subject.
        covariates : array-like of shape (n_subjects, n_covariates) or None, default=None
            Nuisance regressors (``test='regression'`` only).

        Returns
        -------
        self : MassUnivariateLSM
        """
        data, cohort = lesion_matrix(lesions)
        n = data.shape[0]
        y = check_scores(scores, n)
        covariates = check_covariates(covariates, n)
        self._check_params(covariates is not None, cohort is not None)

        vc = self.volume_control_ = resolve_volume_correction(self.volume_correction)
        mask_flat, self.n_min_subjects_ = voxel_mask(data, self.min_subjects)
        self.exclusions_ = mask_exclusions(data, mask_flat, self.n_min_subjects_,
                                           cohort.subject_ids if cohort is not None else None)
        X = np.take(data, np.flatnonzero(mask_flat), axis=1)
        volumes = None
        if vc.any:
            volumes = lesion_volumes(data, cohort)
        if vc.behavior:
            y = volume_regressed(y, volumes)
        if self.compress_patches:
            patches = compress_patches(X)
            Xp, inverse, counts = patches.patterns, patches.inverse, patches.counts
        else:
            Xp, inverse, counts = X, None, None
        self.n_patterns_ = int(Xp.shape[1])
        Xt = Xp
        if vc.lesion == "dtlvc":
            Xt = Xp * dtlvc_scale(volumes)[:, None]
        elif vc.lesion == "regress":
            # identical lesion patterns stay identical after the voxelwise regression,
            # so patch compression still applies
            Xt = LesionVolumeRegression(volumes).transform(Xp)

        engine = self._engine(Xt, y, covariates)
        stat, df = engine.observed()
        if self.test == "liebermeister":
            p, z = engine.pvalues(), stat
        else:
            p, z = S.t_pvalues(stat, df, self.tail), S.t_to_z(stat, df)
        ext = S.tail_transform(stat, self.tail)

        null_max = null_kth = null_cluster = None
        p_fwe = p_cfwer = p_cluster = None
        cluster_labels = cluster_sizes = None
        if self.n_permutations > 0:
            cl = None
            if self.correction == "cluster":
                cl = self._cluster_setup(cohort, mask_flat, df)
            null_max, null_kth, null_cluster = self._permute(engine, n, counts, inverse, cl)
            # float32 permuted maxima against float64 observed values: ties need a tolerance
            p_fwe = S.exceedance_pvalues(ext, null_max, rtol=S.TIE_RTOL)
            if null_kth is not None:
                p_cfwer = S.exceedance_pvalues(ext, null_kth, rtol=S.TIE_RTOL)
            if cl is not None:
                full = np.zeros(mask_flat.shape, bool)
                full[mask_flat] = self._expand(ext, inverse) > cl["thr"]
                cluster_labels, cluster_sizes = self._clusters(full, cl, self._expand(stat, inverse))
                size_p = S.exceedance_pvalues(cluster_sizes, null_cluster)  # integers: exact
                pc = np.ones(mask_flat.shape)
                for lab, sp in enumerate(size_p, start=1):
                    pc[cluster_labels == lab] = sp
                p_cluster = pc[mask_flat]

        # expand patterns to voxels
        e = self._expand
        stat_v, z_v, p_v, ext_v = e(stat, inverse), e(z, inverse), e(p, inverse), e(ext, inverse)
        p_fdr_v = S.fdr_bh(p_v)
        p_bonf_v = S.bonferroni(p_v)
        p_fwe_v = None if p_fwe is None else e(p_fwe, inverse)
        p_cfwer_v = None if p_cfwer is None else e(p_cfwer, inverse)

        corr = self.correction
        if corr == "none":
            sig = p_v <= self.alpha
        elif corr == "fdr":
            sig = p_fdr_v <= self.alpha
        elif corr == "bonferroni":
            sig = p_bonf_v <= self.alpha
        elif corr == "fwe":
            sig = p_fwe_v <= self.alpha
        elif corr == "cfwer":
            sig = (p_cfwer_v if p_cfwer_v is not None else p_fwe_v) <= self.alpha
        else:
            sig = p_cluster <= self.alpha
        if corr == "fwe" or (corr == "cfwer" and null_kth is None):
            self.threshold_ = S.null_threshold(null_max, self.alpha, rtol=S.TIE_RTOL)
        elif corr == "cfwer":
            self.threshold_ = S.null_threshold(null_kth, self.alpha, rtol=S.TIE_RTOL)
        elif corr == "cluster":
            self.threshold_ = float(self._cluster_thr)
        else:
            self.threshold_ = float(ext_v[sig].min()) if sig.any() else float("inf")

        shape = cohort.shape if cohort is not None else mask_flat.shape
        mask = mask_flat.reshape(shape)

        def vol(values, fill):
            return None if values is None else to_volume(values, mask_flat, fill).reshape(shape)

        self.mask_ = mask
        self.statistic_ = vol(stat_v, 0.0)
        self.z_ = vol(z_v, 0.0)
        self.p_ = vol(p_v, 1.0)
        self.p_fdr_ = vol(p_fdr_v, 1.0)
        self.p_bonferroni_ = vol(p_bonf_v, 1.0)
        self.p_fwe_ = vol(p_fwe_v, 1.0)
        self.p_cfwer_ = vol(p_cfwer_v, 1.0)
        self.p_cluster_ = vol(p_cluster, 1.0)
        self.thresholded_ = vol(np.where(sig, stat_v, 0.0), 0.0)
        self.n_significant_ = int(sig.sum())
        self.df_ = df if df is None or np.ndim(df) == 0 else e(np.asarray(df), inverse)
        self.null_max_, self.null_kth_, self.null_cluster_ = null_max, null_kth, null_cluster
        self.n_subjects_ = n
        self.n_tested_ = int(mask_flat.sum())
        for name in ("mask", "statistic", "z", "p", "p_fdr", "p_bonferroni", "p_fwe", "p_cfwer",
                     "p_cluster", "thresholded"):
            value = getattr(self, f"{name}_")
            img = None
            if cohort is not None and value is not None:
                img = cohort.to_img(value, np.uint8 if name == "mask" else np.float32)
            setattr(self, f"{name}_img_", img)
        return self

    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _expand(values, inverse):
        values = np.asarray(values)
        return values if inverse is None else values[inverse]

    def _cluster_setup(self, cohort, mask_flat, df):
        tail_p = self.cluster_p
        if self.test == "liebermeister":
            thr = stats.norm.isf(tail_p)
        else:
            thr = stats.t.isf(tail_p, df)
        self._cluster_thr = float(thr)
        return {"thr": float(thr), "shape": cohort.shape, "mask": mask_flat,
                "structure": ndimage.generate_binary_structure(3, 3)}

    def _clusters(self, supra_flat, cl, signed_flat):
        """Label supra-threshold clusters; for two-sided tests, signs are kept apart."""
        shape = cl["shape"]
        supra = supra_flat.reshape(shape)
        if self.tail == "two-sided":
            sign = np.sign(to_volume(signed_flat, cl["mask"], 0.0, np.float64)).reshape(shape)
            lab_p, n_p = ndimage.label(supra & (sign > 0), cl["structure"])
            lab_n, n_n = ndimage.label(supra & (sign < 0), cl["structure"])
            labels = np.where(lab_n > 0, lab_n + n_p, lab_p)
            n_lab = n_p + n_n
        else:
            labels, n_lab = ndimage.label(supra, cl["structure"])
        sizes = np.bincount(labels.ravel(), minlength=n_lab + 1)[1:]
        return labels.reshape(-1), sizes

    def _permute(self, engine, n, counts, inverse, cl):
        rng = check_random_state(self.random_state)
        n_perm = int(self.n_permutations)
        n_cols = engine.X32.shape[1] if hasattr(engine, "X32") else engine.X.shape[1]
        chunk = int(max(1, min(n_perm, _CHUNK_BYTES // (4 * max(n_cols, 1)))))
        if self.test == "bm":
            chunk = min(chunk, 32)
        def to_stat(raw):  # odd and increasing, so it commutes with the tail transform
            return engine.raw_to_stat(raw) if hasattr(engine, "raw_to_stat") else raw

        def to_raw(stat):
            return engine.stat_to_raw(stat) if hasattr(engine, "stat_to_raw") else stat

        null_max = np.empty(n_perm)
        null_kth = np.empty(n_perm) if self.cfwer_v > 1 else None
        null_cluster = np.empty(n_perm) if cl is not None else None
        done = 0
        with tqdm(total=n_perm, desc=f"permutations ({self.test})", unit="perm",
                  disable=progress_disabled(self.verbose)) as bar:
            while done < n_perm:
                k = min(chunk, n_perm - done)
                perms = np.stack([rng.permutation(n) for _ in range(k)])
                # engines may return a monotone transform of the statistic ("raw", e.g. the
                # partial correlation for t); only the kept maxima are converted back
                raw = engine.permuted(perms)
                ext = S.tail_transform(raw, self.tail, out=None if cl is not None else raw)
                null_max[done:done + k] = to_stat(ext.max(axis=1))
                if null_kth is not None:
                    null_kth[done:done + k] = to_stat(S.kth_largest_weighted(ext, counts, self.cfwer_v))
                if null_cluster is not None:
                    thr = to_raw(cl["thr"])
                    for i in range(k):
                        full = np.zeros(cl["mask"].shape, bool)
                        full[cl["mask"]] = self._expand(ext[i], inverse) > thr
                        _, sizes = self._clusters(full, cl, self._expand(raw[i], inverse))
                        null_cluster[done + i] = sizes.max() if sizes.size else 0
                done += k
                bar.update(k)
        return null_max, null_kth, null_cluster

    def summary(self) -> dict:
        """A JSON-ready summary of the configuration and results."""
        check_is_fitted(self, "statistic_")
        ext = S.tail_transform(self.statistic_[self.mask_], self.tail)
        return {
            "method": "vlsm",
            "params": self.get_params(),
            "volume_correction_applied": self.volume_control_.name,
            "n_subjects": self.n_subjects_,
            "min_subjects_applied": self.n_min_subjects_,
            "n_tested_voxels": self.n_tested_,
            "exclusions": self.exclusions_,
            "n_patterns": self.n_patterns_,
            "df": self.df_ if np.ndim(self.df_) == 0 else None,
            "max_abs_statistic": float(np.abs(self.statistic_[self.mask_]).max()),
            "max_tail_statistic": float(ext.max()),
            "min_p": float(self.p_[self.mask_].min()),
            "min_p_fwe": None if self.p_fwe_ is None else float(self.p_fwe_[self.mask_].min()),
            "threshold": self.threshold_,
            "n_significant_voxels": self.n_significant_,
        }
