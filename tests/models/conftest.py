import pytest


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    # See tests/train/conftest.py: one thread is faster on the shared 2-core machine.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
