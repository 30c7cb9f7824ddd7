"""Ridge LSM: a voxelwise multivariate linear model of the score, penalty chosen by efficient
leave-one-out cross-validation (scikit-learn's ``RidgeCV``), with optional permutation inference."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg, sparse
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import RidgeCV
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from deeplsm._docs import fill_doc
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
)
from deeplsm.classical._mask import mask_exclusions, voxel_mask
from deeplsm.exceptions import DeepLSMError

CORRECTIONS = ("none", "fwe", "cfwer")
#: Default penalty grid, relative to the mean squared norm of the centred lesion vectors (the mean
#: eigenvalue of the centred Gram matrix), so that it means the same on every grid and volume control.
RELATIVE_ALPHAS = np.logspace(-6, 4, 41)
#: A choice on the edge of the grid is only worth a warning when the leave-one-out error is still
#: falling there by more than this fraction (on a flat edge the model has reached its limit: least
#: squares at the bottom, the mean score at the top, and a wider grid changes nothing).
EDGE_TOLERANCE = 1e-3
_CHUNK = 64


@fill_doc
class RidgeLSM(RegressorMixin, BaseEstimator):
    """Multivariate linear lesion-symptom mapping: ridge regression of the score on the voxels.

    The model is ``score = intercept + sum_v beta_v * lesion_v`` over the tested voxels (those
    lesioned and spared in at least ``min_subjects`` subjects), fitted with an L2 penalty. The
    penalty is chosen among ``alphas`` by scikit-learn's :class:`~sklearn.linear_model.RidgeCV`
    with its efficient leave-one-out (generalised cross-validation) on the subjects given to
    :meth:`fit`, which costs one eigendecomposition of the ``n_subjects x n_subjects`` Gram matrix.
    The map is the coefficient image ``beta_``: positive where damage raises the score.

    Parameters
    ----------
    alphas : array-like of float or None, default=None
        Penalties to choose from. ``None``: ``RELATIVE_ALPHAS`` (33 values from 1e-5 to 1e3,
        log-spaced) times the mean squared norm of the centred lesion vectors, so the grid spans
        from nearly least squares to a heavily shrunk model on any grid. A warning is raised when the
        choice falls on the first or last value.
    volume_correction : str, default='none'
        A lesion-volume control as LESYMAP / svrlsmgui name it (see
        :func:`deeplsm.classical._common.resolve_volume_correction`). ``'voxel'`` (``'dtlvc'``):
        lesion vectors scaled to unit norm (as SVR-LSM). ``'behavior'`` (``'score'``): lesion
        volume (and ``covariates``) regressed out of the score before the fit; :meth:`predict`
        adds that trend back, so predictions stay on the score's own scale. ``'both'``: both.
        ``'lesion'``: lesion volume regressed out of every voxel's values (svrlsmgui's "Regress
        on Lesion"; new subjects are corrected with the training slopes); ``'regress_on_both'``:
        ``'behavior'`` and ``'lesion'``.
    min_subjects : int or float, default=10
        As in :class:`MassUnivariateLSM`.
    n_permutations : int, default=1000
        Permutations of the scores for voxelwise and FWE/CFWER p-values of the coefficients. The
        penalty stays the one chosen on the real scores, so each permutation is a matrix product
        (the dual solution is linear in the scores). 0 skips them.
    tail : {'two-sided', 'greater', 'less'}, default='two-sided'
    correction : {'none', 'fwe', 'cfwer'}, default='none'
        What thresholds :attr:`thresholded_`: the voxelwise permutation p (``'none'``), the max
        |beta| null (``'fwe'``) or the ``cfwer_v``-th largest (``'cfwer'``).
    alpha : float, default=0.05
        Significance level of :attr:`thresholded_` (the ridge penalty is ``alphas`` / ``penalty_``).
    cfwer_v : int, default=1
    %(random_state)s
    %(verbose)s

    Attributes
    ----------
    mask_ : ndarray of bool
        Tested voxels.
    exclusions_ : dict
        Voxels tested and left out by ``min_subjects`` (and why), and the subjects with no
        lesioned voxel among the tested ones (see :func:`deeplsm.classical._mask.mask_exclusions`).
    beta_ : ndarray
        Ridge coefficients (score units per lesioned voxel; per unit of the scaled lesion vector
        under DTLVC), 0 outside the mask.
    intercept_ : float
    penalty_ : float
        The chosen penalty (``RidgeCV.alpha_``).
    alphas_ : ndarray
        The penalty grid searched.
    loo_mse_ : ndarray
        Leave-one-out mean squared error for each penalty in ``alphas_`` (in the units of the
        volume-corrected score).
    at_edge_ : {'smallest', 'largest'} or None
        Whether ``penalty_`` is on an edge of the grid.
    penalty_scale_ : float
        Mean squared norm of the centred lesion vectors (the default grid's unit).
    model_ : sklearn.linear_model.RidgeCV
        The fitted model on the tested voxels.
    p_, p_fwe_, p_cfwer_ : ndarray or None
        Voxelwise permutation p, and FWE / CFWER corrected p (1 outside the mask).
    thresholded_ : ndarray
        ``beta_`` where significant, else 0.
    threshold_ : float
    null_max_, null_kth_ : ndarray or None
    statistic_ : ndarray
        Same as ``beta_``.
    nuisance_coef_ : ndarray or None
        Coefficients of the score on (1, lesion volume, covariates) when those were regressed out.
    beta_img_, statistic_img_, mask_img_ : Nifti1Image or None
        The maps as images, when fitted on a :class:`~deeplsm.cohort.LesionCohort`.
    p_img_, p_fwe_img_, p_cfwer_img_, thresholded_img_ : Nifti1Image or None

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = (rng.random((80, 50)) < 0.3).astype(np.uint8)
    >>> y = X[:, :5].mean(axis=1)
    >>> m = RidgeLSM(min_subjects=5, n_permutations=0).fit(X, y)
    >>> bool(m.beta_[:5].mean() > 5 * np.abs(m.beta_[5:]).mean())
    True
    """

    def __init__(self, *, alphas=None, volume_correction="none", min_subjects=10, n_permutations=1000,
                 tail="two-sided", correction="none", alpha=0.05, cfwer_v=1, random_state=None,
                 verbose=False):
        self.alphas = alphas
        self.volume_correction = volume_correction
        self.min_subjects = min_subjects
        self.n_permutations = n_permutations
        self.tail = tail
        self.correction = correction
        self.alpha = alpha
        self.cfwer_v = cfwer_v
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------------------------------
    def _check_params(self) -> None:
        self._volume = resolve_volume_correction(self.volume_correction)
        check_choice("tail", self.tail, S.TAILS)
        check_choice("correction", self.correction, CORRECTIONS)
        if self.alphas is not None:
            a = np.asarray(self.alphas, dtype=np.float64).ravel()
            if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a <= 0):
                raise DeepLSMError(f"alphas must be positive numbers, got {self.alphas!r}")
        if not (isinstance(self.n_permutations, int | np.integer) and self.n_permutations >= 0):
            raise DeepLSMError(f"n_permutations must be an integer >= 0, got {self.n_permutations!r}")
        if self.correction != "none" and self.n_permutations == 0:
            raise DeepLSMError(f"correction={self.correction!r} needs n_permutations > 0")
        if not 0 < float(self.alpha) < 1:
            raise DeepLSMError(f"alpha must be in (0, 1), got {self.alpha}")
        if not (isinstance(self.cfwer_v, int | np.integer) and self.cfwer_v >= 1):
            raise DeepLSMError(f"cfwer_v must be an integer >= 1, got {self.cfwer_v!r}")

    def _features(self, data: np.ndarray, cohort=None, *, fit: bool = False):
        """Tested voxels as a (n_subjects, n_voxels) float matrix: sparse, rows unit-norm under
        DTLVC; dense, with lesion volume regressed out of every voxel under ``'lesion'``."""
        X = sparse.csr_matrix(np.take(data, self._voxels, axis=1), dtype=np.float64)
        if self._volume.lesion == "dtlvc":
            norm = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
            X = sparse.diags(np.where(norm > 0, 1.0 / np.where(norm > 0, norm, 1.0), 0.0)) @ X
        elif self._volume.lesion == "regress":
            volumes = lesion_volumes(data, cohort)
            if fit:
                self.lesion_regression_ = LesionVolumeRegression(volumes)
                self.lesion_slopes_ = self.lesion_regression_.slopes(X)
            return self.lesion_regression_.transform(X, volumes, self.lesion_slopes_)
        return sparse.csr_matrix(X)

    def _nuisance(self, data: np.ndarray, cohort, covariates: np.ndarray | None) -> np.ndarray | None:
        """Design (1, lesion volume, covariates) of what is regressed out of the score, or None."""
        cols = []
        if self._volume.behavior:
            cols.append(lesion_volumes(data, cohort))
        if covariates is not None:
            cols += list(covariates.T)
        return np.column_stack([np.ones(data.shape[0]), *cols]) if cols else None

    def fit(self, lesions, scores, covariates=None):
        """Choose the penalty, fit the ridge model and (optionally) permute the scores.

        Parameters
        ----------
        lesions : LesionCohort or array-like of shape (n_subjects, n_voxels)
        scores : array-like of shape (n_subjects,)
        covariates : array-like of shape (n_subjects, n_covariates) or None, default=None
            Regressed out of the score (with lesion volume when ``volume_correction`` is
            ``'score'`` or ``'both'``); :meth:`predict` then needs them too.

        Returns
        -------
        self : RidgeLSM
        """
        self._check_params()
        data, cohort = lesion_matrix(lesions)
        n = data.shape[0]
        y = check_scores(scores, n)
        covariates = check_covariates(covariates, n)
        mask_flat, self.n_min_subjects_ = voxel_mask(data, self.min_subjects)
        self.exclusions_ = mask_exclusions(data, mask_flat, self.n_min_subjects_,
                                           cohort.subject_ids if cohort is not None else None)
        self._mask_flat = mask_flat
        self._voxels = np.flatnonzero(mask_flat)
        self.n_covariates_ = 0 if covariates is None else covariates.shape[1]
        Z = self._nuisance(data, cohort, covariates)
        self.nuisance_coef_ = None
        self.score_mean_ = float(y.mean())
        if Z is not None:
            self.nuisance_coef_ = np.linalg.lstsq(Z, y, rcond=None)[0]
            y = y - Z @ self.nuisance_coef_ + self.score_mean_
        # subjects with no lesioned voxel in the mask keep a zero lesion vector (exclusions_)
        X = self._features(data, cohort, fit=True)

        # Centred Gram matrix: its mean eigenvalue scales the default grid; its inverse (plus the
        # penalty) gives the dual solution the permutations reuse.
        G = X @ X.T
        G = G.toarray() if sparse.issparse(G) else np.asarray(G)
        Gc = G - G.mean(axis=0, keepdims=True)
        Gc -= Gc.mean(axis=1, keepdims=True)
        self.penalty_scale_ = float(np.trace(Gc) / n) or 1.0
        if self.alphas is None:
            alphas = RELATIVE_ALPHAS * self.penalty_scale_
        else:
            alphas = np.sort(np.asarray(self.alphas, dtype=np.float64).ravel())
        self.alphas_ = alphas
        self.model_ = RidgeCV(alphas=alphas, fit_intercept=True, store_cv_results=True).fit(X, y)
        self.penalty_ = float(self.model_.alpha_)
        self.loo_mse_ = np.asarray(self.model_.cv_results_).mean(axis=0)
        self.at_edge_ = self._check_edge()
        self.intercept_ = float(self.model_.intercept_)
        beta = np.asarray(self.model_.coef_, dtype=np.float64).ravel()
        ext = S.tail_transform(beta, self.tail)

        p = p_fwe = p_cfwer = None
        self.null_max_ = self.null_kth_ = None
        if self.n_permutations > 0:
            p, self.null_max_, self.null_kth_, ext_dual = self._permute(Gc, X, y)
            p_fwe = S.exceedance_pvalues(ext_dual, self.null_max_)
            if self.null_kth_ is not None:
                p_cfwer = S.exceedance_pvalues(ext_dual, self.null_kth_)
        # ridge compares its dual-computed observed values with nulls computed the same way
        set_beta_maps(self, beta, ext, p, p_fwe, p_cfwer, mask_flat, cohort, n)
        return self

    def _check_edge(self) -> str | None:
        """``'smallest'``/``'largest'`` when the penalty is on an edge of the grid (warning when the
        leave-one-out error is still falling there), else None."""
        a, loo = self.alphas_, self.loo_mse_
        if a.size < 2 or self.penalty_ not in (a[0], a[-1]):
            return None
        edge, i, j = ("smallest", 0, 1) if self.penalty_ == a[0] else ("largest", -1, -2)
        if loo[j] - loo[i] > EDGE_TOLERANCE * abs(loo[i]):
            warnings.warn(f"ridge: the cross-validated penalty is the {edge} of the grid "
                          f"({self.penalty_:.3g}) and the leave-one-out error is still falling "
                          "there; widen alphas", UserWarning, stacklevel=3)
        return edge

    def _permute(self, Gc: np.ndarray, X: sparse.csr_matrix, y: np.ndarray):
        """Permutation nulls with the penalty fixed: beta(y) = X^T (Gc + penalty I)^-1 (y - mean y).

        The centred Gram matrix has the constant vector in its null space, so this dual form equals
        the centred primal solution with no explicit centring of the (sparse) lesion matrix.
        Returns the voxelwise p, the max (and ``cfwer_v``-th largest) null, and the observed
        tail-transformed map from the same arithmetic, for the corrected p-values.
        """
        rng = check_random_state(self.random_state)
        n_perm, n = int(self.n_permutations), len(y)
        A = linalg.inv(Gc + self.penalty_ * np.eye(n))
        A = (A + A.T) / 2.0
        XT = sparse.csr_matrix(X.T)
        yc = y - y.mean()
        ext_obs = S.tail_transform(np.asarray(XT @ (A @ yc)).ravel(), self.tail)
        # observed and permuted maps come from the same arithmetic; ties count as exceedances
        obs_thr = (ext_obs - 1e-9 * np.abs(ext_obs).max())[None, :]
        exceed = np.zeros(ext_obs.shape, np.int64)
        null_max = np.empty(n_perm)
        null_kth = np.empty(n_perm) if self.cfwer_v > 1 else None
        done = 0
        with tqdm(total=n_perm, desc="ridge permutations", unit="perm",
                  disable=progress_disabled(self.verbose)) as bar:
            while done < n_perm:
                k = min(_CHUNK, n_perm - done)
                Y = np.stack([yc[rng.permutation(n)] for _ in range(k)], axis=1)  # (n, k)
                B = np.asarray(XT @ (A @ Y)).T  # (k, V)
                ext = S.tail_transform(B, self.tail)
                exceed += (ext >= obs_thr).sum(axis=0)
                null_max[done:done + k] = ext.max(axis=1)
                if null_kth is not None:
                    null_kth[done:done + k] = S.kth_largest_weighted(ext, None, self.cfwer_v)
                done += k
                bar.update(k)
        p = (1.0 + exceed) / (1.0 + n_perm)
        return p, null_max, null_kth, ext_obs

    def predict(self, lesions, covariates=None) -> np.ndarray:
        """Predicted scores, on the scale of the scores given to :meth:`fit`.

        When lesion volume or covariates were regressed out of the score, their fitted trend is
        added back.

        Parameters
        ----------
        lesions : LesionCohort or array-like of shape (n_subjects, n_voxels)
            On the training grid.
        covariates : array-like of shape (n_subjects, n_covariates) or None, default=None
            Needed when the model was fitted with covariates.

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
        covariates = check_covariates(covariates, data.shape[0])
        n_cov = 0 if covariates is None else covariates.shape[1]
        if n_cov != self.n_covariates_:
            raise DeepLSMError(f"the model was fitted with {self.n_covariates_} covariate(s); "
                               f"predict got {n_cov}")
        pred = self.model_.predict(self._features(data, cohort))
        Z = self._nuisance(data, cohort, covariates)
        if Z is not None:
            pred = pred + Z @ self.nuisance_coef_ - self.score_mean_
        return pred

    def summary(self) -> dict:
        check_is_fitted(self, "model_")
        params = self.get_params()
        params["alphas"] = None if self.alphas is None else [float(a) for a in np.ravel(self.alphas)]
        return {
            "method": "ridge",
            "params": params,
            "penalty": self.penalty_,
            "penalty_scale": self.penalty_scale_,
            "penalty_at_edge": self.at_edge_,
            "alphas": [float(a) for a in self.alphas_],
            "loo_mse": [float(v) for v in self.loo_mse_],
            "intercept": self.intercept_,
            "n_subjects": self.n_subjects_,
            "min_subjects_applied": self.n_min_subjects_,
            "n_tested_voxels": self.n_tested_,
            "exclusions": self.exclusions_,
            "threshold": self.threshold_,
            "n_significant_voxels": self.n_significant_,
            "min_p": None if self.p_ is None else float(self.p_[self.mask_].min()),
            "min_p_fwe": None if self.p_fwe_ is None else float(self.p_fwe_[self.mask_].min()),
        }
