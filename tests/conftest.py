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


@pytest.fixture(autouse=True)
def _restore_ctrl_c():
    """Lightning ignores SIGINT for good once it has handled a Ctrl-C in this process; a child
    started later inherits the ignore, and Python then installs no KeyboardInterrupt handler in
    it (a Ctrl-C test's search ran on with exit 0). Restore Python's handler after each test."""
    yield
    import signal
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def files(tmp_path):
    """The search tests' tiny spaces (tests/tiny_search.py) written into tmp_path."""
    from tiny_search import write_spaces
    return write_spaces(tmp_path)
