"""Synthetic lesion cohorts: the embedded default (WMH-like maps in MNI white matter)."""

from deeplsm.synthetic._wmh import WMHPriors, make_wmh_cohort, wmh_priors, write_cohort_folder

__all__ = ["WMHPriors", "make_wmh_cohort", "wmh_priors", "write_cohort_folder"]
