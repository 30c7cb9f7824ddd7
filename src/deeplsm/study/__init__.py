"""One configured comparison, end to end: cohort → scores → CNNs → maps → VLSM/SVR → report."""

from deeplsm.study._config import DEFAULTS, StudySettings, demo_config, load_config, make_config
from deeplsm.study._run import STAGES, Study, run_study

__all__ = ["DEFAULTS", "STAGES", "Study", "StudySettings", "demo_config", "load_config", "make_config",
           "run_study"]
