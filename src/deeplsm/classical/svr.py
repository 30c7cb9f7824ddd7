"""SVR-LSM: support-vector regression lesion-symptom mapping (Zhang et al. 2014; DeMarco &
Turkeltaub 2018), fitted through a precomputed RBF kernel so permutations reuse it."""

from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.model_selection import KFold
from sklearn.svm import SVR
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from deeplsm._docs import fill_doc
from deeplsm._schema import (
    CVFolds,
    MinSubjects,
    NonNegativeFloat,
    NonNegativeInt,
    OpenUnitFloat,
    PositiveFloat,
    PositiveInt,
    check_param,
)
from deeplsm._utils import check_random_state, progress_disabled
from deeplsm.classical import _stats as S
from deeplsm.classical._common import (
    LesionVolumeRegression,
    check_choice,
    check_covariates,
    check_scores,
    lesion_matrix,
    lesion_volumes,
    resolve_volume_correction,
    set_beta_maps,
    volume_regressed,
)
from deeplsm.classical._mask import mask_exclusions, voxel_mask
from deeplsm.exceptions import DeepLSMError

CORRECTIONS = ("none", "fwe", "cfwer")
_BETA_MAX = 10.0  # svrlsmgui: beta_scale = 10 / max(abs(w))
_CHUNK = 64


def _rbf_from_gram(G: np.ndarray, sq: np.ndarray, gamma: float, sq_b: np.ndarray | None = None):
    """exp(-gamma * ||a - b||^2) from a Gram matrix and squared norms."""
    sq_b = sq if sq_b is None else sq_b
    D = np.maximum(sq[:, None] + sq_b[None, :] - 2.0 * G, 0.0)
    return np.exp(-gamma * D)


@fill_doc
class SVRLSM(RegressorMixin, BaseEstimator):
    """Multivariate lesion-symptom mapping with an RBF support-vector regression.

    The lesion vectors (tested voxels only) are scaled to unit norm (DTLVC, the default volume
    control of Zhang et al. 2014) and the scores are multiplied by ``100 / max|score|``, as in
    Zhang et al.'s toolbox, so that ``C=30`` and ``gamma=5`` mean what they mean there. The beta
    map is ``dual_coef_ @ support_vectors`` (the primal weights in lesion space), multiplied by
    ``10 / max|w|`` as in svrlsmgui; permuted maps use the same factor.

    Parameters
    ----------
    C : float, default=30.0
        Box constraint.
    gamma : float, default=5.0
        RBF width: ``exp(-gamma * ||a - b||^2)``.
    epsilon : float, default=0.1
        Width of the epsilon-insensitive tube, in the rescaled (0–100) score units.
    volume_correction : str, default='dtlvc'
        Lesion-volume control, named as svrlsmgui (``lesionvolcorrection``) and LESYMAP
        (``correctByLesSize``) name it:

        * ``'dtlvc'`` (alias ``'voxel'``): unit-norm lesion vectors (Zhang et al. 2014).
        * ``'behavior'`` (alias ``'score'``, svrlsmgui ``'Regress on Behavior'``): lesion volume
          (and ``covariates``) regressed out of the score.
        * ``'both'`` (LESYMAP): ``'behavior'`` and ``'dtlvc'``.
        * ``'lesion'`` (svrlsmgui ``'Regress on Lesion'``): lesion volume regressed out of every
          voxel's lesion values, as svrlsmgui's ``continuize_lesions.m`` does; computed through the
          kernel (:class:`~deeplsm.classical._common.LesionVolumeRegression`), so the lesion data
          stay sparse.
        * ``'regress_on_both'`` (svrlsmgui ``'Regress on Both'``): ``'behavior'`` and ``'lesion'``.
        * ``'none'``.

        Case, spaces and hyphens are ignored (``'Regress on Both'`` works).
    min_subjects : int or float, default=10
        As in :class:`MassUnivariateLSM`.
    n_permutations : int, default=1000
        Permuted refits (reusing the kernel) for voxelwise and FWE/CFWER p-values. 0 skips them.
    tail : {'two-sided', 'greater', 'less'}, default='two-sided'
        ``'less'`` asks where lesions lower the score (negative betas).
    correction : {'none', 'fwe', 'cfwer'}, default='none'
        What thresholds :attr:`thresholded_`: the voxelwise permutation p (``'none'``), the max
        |beta| null (``'fwe'``) or the ``cfwer_v``-th largest (``'cfwer'``).
    alpha : float, default=0.05
    cfwer_v : int, default=1
    cv : int or None, default=None
        If given, choose ``C`` and ``gamma`` from ``param_grid`` by ``cv``-fold cross-validated
        mean squared error before the final fit.
    param_grid : dict or None, default=None
        ``{'C': [...], 'gamma': [...]}``; default ``C`` in (1, 10, 30, 100), ``gamma`` in (0.5, 1,
        2, 5, 10).
    n_jobs : int, default=1
        Processes for the permuted refits (joblib).
    %(random_state)s
    %(verbose)s

    Attributes
    ----------
    mask_ : ndarray of bool
    beta_ : ndarray
        Rescaled beta map (0 outside the mask).
    beta_scale_ : float
        The factor ``10 / max|w|``.
    score_scale_ : float
        The factor ``100 / max|score|`` applied to the scores.
    p_, p_fwe_, p_cfwer_ : ndarray or None
        Voxelwise permutation p, and FWE / CFWER corrected p (1 outside the mask).
    thresholded_ : ndarray
        ``beta_`` where significant, else 0.
    threshold_ : float
    null_max_, null_kth_ : ndarray or None
    C_, gamma_ : float
        The hyperparameters used (after the optional search).
    cv_results_ : dict or None
        Mean cross-validated MSE for each (C, gamma).
    model_ : sklearn.svm.SVR
        The fitted SVR on the precomputed kernel.
    volume_control_ : VolumeControl
        The resolved ``volume_correction`` (canonical ``name``, score and lesion parts).
    exclusions_ : dict
        Voxels tested and left out by ``min_subjects`` (and why), and the subjects with no
        lesioned voxel among the tested ones (see :func:`deeplsm.classical._mask.mask_exclusions`).
    beta_img_, p_img_, p_fwe_img_, thresholded_img_, mask_img_ : Nifti1Image or None
    """

    def __init__(self, *, C=30.0, gamma=5.0, epsilon=0.1, volume_correction="dtlvc", min_subjects=10,
                 n_permutations=1000, tail="two-sided", correction="none", alpha=0.05, cfwer_v=1,
                 cv=None, param_grid=None, n_jobs=1, random_state=None, verbose=False):
        self.C = C
        self.gamma = gamma
        self.epsilon = epsilon
        self.volume_correction = volume_correction
        self.min_subjects = min_subjects
        self.n_permutations = n_permutations
        self.tail = tail
        self.correction = correction
        self.alpha = alpha
        self.cfwer_v = cfwer_v
        self.cv = cv
        self.param_grid = param_grid
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------------------------------
    def _check_params(self) -> None:
        resolve_volume_correction(self.volume_correction)
        check_choice("tail", self.tail, S.TAILS)
        check_choice("correction", self.correction, CORRECTIONS)
        check_param("C", self.C, PositiveFloat)
        check_param("gamma", self.gamma, PositiveFloat)
        check_param("epsilon", self.epsilon, NonNegativeFloat)
        check_param("min_subjects", self.min_subjects, MinSubjects)
        check_param("n_permutations", self.n_permutations, NonNegativeInt)
        if self.correction != "none" and self.n_permutations == 0:
            raise DeepLSMError(f"correction={self.correction!r} needs n_permutations > 0")
        check_param("alpha", self.alpha, OpenUnitFloat)
        check_param("cfwer_v", self.cfwer_v, PositiveInt)
        check_param("cv", self.cv, CVFolds | None)

    def _features(self, data: np.ndarray) -> sparse.csr_matrix:
        """Tested voxels as a sparse (n_subjects, n_voxels) matrix, rows unit-norm under DTLVC.

        Lesion maps are sparse, so the Gram matrix and the beta maps cost O(non-zeros) instead
        of O(N^2 V) and O(P N V); no dense float copy of the lesion data is made.
        """
        X = sparse.csr_matrix(np.take(data, self._voxels, axis=1), dtype=np.float64)
        if self.volume_control_.lesion == "dtlvc":
            norm = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
            X = sparse.diags(np.where(norm > 0, 1.0 / np.where(norm > 0, norm, 1.0), 0.0)) @ X
        return sparse.csr_matrix(X)

    def fit(self, lesions, scores, covariates=None):
        """Fit the SVR, compute the beta map and (optionally) its permutation p-values.

        Parameters
        ----------
        lesions : LesionCohort or array-like of shape (n_subjects, n_voxels)
        scores : array-like of shape (n_subjects,)
        covariates : array-like of shape (n_subjects, n_covariates) or None, default=None
            Regressed out of the score (with lesion volume when ``volume_correction`` is
            ``'score'`` or ``'both'``).

        Returns
        -------
        self : SVRLSM
        """
        self._check_params()
        vc = self.volume_control_ = resolve_volume_correction(self.volume_correction)
        data, cohort = lesion_matrix(lesions)
        n = data.shape[0]
        y = check_scores(scores, n)
        covariates = check_covariates(covariates, n)
        mask_flat, self.n_min_subjects_ = voxel_mask(data, self.min_subjects)
        self.exclusions_ = mask_exclusions(data, mask_flat, self.n_min_subjects_,
                                           cohort.subject_ids if cohort is not None else None)
        self._mask_flat = mask_flat
        self._voxels = np.flatnonzero(mask_flat)
        self._fitted_on_cohort = cohort is not None
        volumes = lesion_volumes(data, cohort) if vc.any else None
        if vc.behavior:
            y = volume_regressed(y, volumes, covariates)
        elif covariates is not None:
            Z = np.column_stack([np.ones(n), covariates])
            y = y - Z @ np.linalg.lstsq(Z, y, rcond=None)[0] + y.mean()
        self.score_scale_ = 100.0 / float(np.abs(y).max())
        y = y * self.score_scale_
        X = self._features(data)
        G = (X @ X.T).toarray()
        # svrlsmgui's 'Regress on Lesion': X -> P X, so the Gram matrix is P G P'
        self._lesion_reg = LesionVolumeRegression(volumes) if vc.lesion == "regress" else None
        self._G_raw = G
        if self._lesion_reg is not None:
            P = self._lesion_reg.projector
            G = P @ G @ P.T
        # subjects with no lesioned voxel in the mask keep a zero lesion vector (exclusions_)
        sq = np.diag(G).copy()
        self.C_, self.gamma_ = float(self.C), float(self.gamma)
        self.cv_results_ = None
        if self.cv is not None:
            self._search(G, sq, y)
        K = _rbf_from_gram(G, sq, self.gamma_)
        self.model_ = SVR(kernel="precomputed", C=self.C_, epsilon=self.epsilon).fit(K, y)
        self._X_train = X
        self._sq_train = sq
        self.n_support_ = int(self.model_.support_.size)
        alpha = np.zeros(n)
        alpha[self.model_.support_] = self.model_.dual_coef_[0]
        w = np.asarray(X.T @ self._lesion_dual(alpha)).ravel()
        wmax = float(np.abs(w).max())
        self.beta_scale_ = _BETA_MAX / wmax if wmax > 0 else 1.0
        beta = w * self.beta_scale_
        ext = S.tail_transform(beta, self.tail)

        p = p_fwe = p_cfwer = None
        self.null_max_ = self.null_kth_ = None
        if self.n_permutations > 0:
            p, self.null_max_, self.null_kth_ = self._permute(K, X, y, beta)
            p_fwe = S.exceedance_pvalues(ext, self.null_max_, rtol=S.TIE_RTOL)
            if self.null_kth_ is not None:
                p_cfwer = S.exceedance_pvalues(ext, self.null_kth_, rtol=S.TIE_RTOL)
        set_beta_maps(self, beta, ext, p, p_fwe, p_cfwer, mask_flat, cohort, n, rtol=S.TIE_RTOL)
        return self

    def _search(self, G, sq, y) -> None:
        grid = self.param_grid or {"C": [1.0, 10.0, 30.0, 100.0], "gamma": [0.5, 1.0, 2.0, 5.0, 10.0]}
        Cs = [float(c) for c in grid.get("C", [self.C])]
        gammas = [float(g) for g in grid.get("gamma", [self.gamma])]
        seed = int(check_random_state(self.random_state).integers(2**31 - 1))
        folds = list(KFold(self.cv, shuffle=True, random_state=seed).split(y))
        results = {}
        for g in gammas:
            K = _rbf_from_gram(G, sq, g)
            for c in Cs:
                errs = []
                for tr, te in folds:
                    m = SVR(kernel="precomputed", C=c, epsilon=self.epsilon).fit(K[np.ix_(tr, tr)], y[tr])
                    errs.append(np.mean((m.predict(K[np.ix_(te, tr)]) - y[te]) ** 2))
                results[(c, g)] = float(np.mean(errs))
        best = min(results, key=results.get)
        self.C_, self.gamma_ = best
        self.cv_results_ = {"params": [{"C": c, "gamma": g} for c, g in results],
                            "mean_mse": list(results.values()), "best": {"C": best[0], "gamma": best[1]}}

    def _permute(self, K, X, y, beta):
        rng = check_random_state(self.random_state)
        n_perm, n = int(self.n_permutations), len(y)
        ext_obs = S.tail_transform(beta, self.tail)
        exceed = np.zeros(beta.shape, np.int64)
        null_max = np.empty(n_perm)
        null_kth = np.empty(n_perm) if self.cfwer_v > 1 else None
        XT32 = sparse.csr_matrix(X.T, dtype=np.float32)
        # float32 maps: count ties with the observed value as exceedances
        obs_thr = (ext_obs - 1e-6 * np.abs(ext_obs)).astype(np.float32)[None, :]
        done = 0
        with tqdm(total=n_perm, desc="SVR permutations", unit="perm",
                  disable=progress_disabled(self.verbose)) as bar:
            while done < n_perm:
                k = min(_CHUNK, n_perm - done)
                perms = [rng.permutation(n) for _ in range(k)]
                A = self._lesion_dual(self._dual_vectors(K, y, perms).T).T  # (k, n)
                B = np.asarray(XT32 @ A.T.astype(np.float32)).T * np.float32(self.beta_scale_)
                ext = S.tail_transform(B, self.tail)
                exceed += (ext >= obs_thr).sum(axis=0)
                null_max[done:done + k] = ext.max(axis=1)
                if null_kth is not None:
                    null_kth[done:done + k] = S.kth_largest_weighted(ext, None, self.cfwer_v)
                done += k
                bar.update(k)
        p = (1.0 + exceed) / (1.0 + n_perm)
        return p, null_max, null_kth

    def _lesion_dual(self, alpha: np.ndarray) -> np.ndarray:
        """Dual vector(s) (n,) or (n, k) to multiply with the *uncorrected* lesion data:
        ``(P X)' a = X' (P' a)``, so the beta map never needs the dense corrected data."""
        return alpha if self._lesion_reg is None else self._lesion_reg.projector.T @ alpha

    def _dual_vectors(self, K, y, perms) -> np.ndarray:
        def one(perm):
            m = SVR(kernel="precomputed", C=self.C_, epsilon=self.epsilon).fit(K, y[perm])
            a = np.zeros(len(y))
            a[m.support_] = m.dual_coef_[0]
            return a

        if self.n_jobs in (None, 1):
            return np.stack([one(p) for p in perms])
        from joblib import Parallel, delayed

        return np.stack(Parallel(n_jobs=self.n_jobs)(delayed(one)(p) for p in perms))

    def predict(self, lesions) -> np.ndarray:
        """Predicted scores, in the units of the (volume-corrected) training scores.

        Parameters
        ----------
        lesions : LesionCohort or array-like of shape (n_subjects, n_voxels)
            On the training grid.

        Returns
        -------
        ndarray of shape (n_subjects,)
        """
        check_is_fitted(self, "model_")
        data, cohort = lesion_matrix(lesions)
        if data.shape[1] != self._mask_flat.size:
            raise DeepLSMError(
                f"lesions have {data.shape[1]} voxels per map but the model was fitted on "
                f"{self._mask_flat.size}"
            )
        X = self._features(data)
        G = (X @ self._X_train.T).toarray()
        sq = np.asarray(X.multiply(X).sum(axis=1)).ravel()
        reg = self._lesion_reg
        if reg is not None:
            # x_new - vol_new * slope, with the training slopes s = X_train' c:
            # <x_new - v s, P x_j> and ||x_new - v s||^2 from Gram products only
            if (cohort is not None) != self._fitted_on_cohort:
                raise DeepLSMError("volume_correction regresses lesion volume out of the lesion "
                                   "maps: predict on the same kind of input as fit (a "
                                   "LesionCohort or an array), so volumes share their units")
            vol = lesion_volumes(data, cohort)
            Gc = self._G_raw @ reg.weights  # X_train X_train' c = X_train s
            xs = G @ reg.weights  # x_new . s
            G = (G - np.outer(vol, Gc)) @ reg.projector.T
            sq = sq - 2.0 * vol * xs + vol**2 * float(reg.weights @ Gc)
        K = _rbf_from_gram(G, sq, self.gamma_, self._sq_train)
        return self.model_.predict(K) / self.score_scale_

    def summary(self) -> dict:
        check_is_fitted(self, "model_")
        return {
            "method": "svr",
            "params": self.get_params(),
            "volume_correction_applied": self.volume_control_.name,
            "C_used": self.C_,
            "gamma_used": self.gamma_,
            "n_subjects": self.n_subjects_,
            "min_subjects_applied": self.n_min_subjects_,
            "n_tested_voxels": self.n_tested_,
            "exclusions": self.exclusions_,
            "n_support_vectors": self.n_support_,
            "beta_scale": self.beta_scale_,
            "score_scale": self.score_scale_,
            "threshold": self.threshold_,
            "n_significant_voxels": self.n_significant_,
            "min_p": None if self.p_ is None else float(self.p_[self.mask_].min()),
            "min_p_fwe": None if self.p_fwe_ is None else float(self.p_fwe_[self.mask_].min()),
            "cv_results": self.cv_results_,
        }
