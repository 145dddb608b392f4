import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _single_thread():
    # The CI box has two shared cores; intra-op threads fighting other processes slow these tiny tensors ~10x.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
