"""One torch thread for a test module of tiny models (restored after): they run fastest
single-threaded on a shared 2-core machine. Use: ``from tests.torch_threads import one_thread``
(an autouse, module-scoped fixture)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
