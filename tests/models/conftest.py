# The same one-thread setting as the training tests (see tests/train/conftest.py); importing the
# autouse fixture registers it here too.
from tests.train.conftest import _one_thread  # noqa: F401
