"""Test-session settings shared by every test file."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # The suite runs many small models; on 2 cores a second torch thread mostly adds waiting
    # (and on a loaded machine spinning OpenMP threads made small forwards 20-80x slower).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
