"""ARENA finds the rank a task needs: a rank-2 teacher update per layer is recovered from rank 16."""

import copy

import pytest
import torch
from torch import nn

from arena_seg.adapters import ArenaConfig, ArenaOptimizer, effective_ranks, inject, register_proximal_hook

DIM, TRUE_RANK, START_RANK, STEPS = 32, 2, 16, 400


class Heads(nn.Module):
    """Three frozen random 32->32 Linear layers side by side.

    Each layer's output is supervised directly so each layer's update is identifiable; in a deep chain the
    per-layer ranks can trade off against each other and recovery is slow and seed-dependent.
    """

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(DIM, DIM) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([layer(x) for layer in self.layers])


def _train(lam: float, prox: str, use_hook: bool, seed: int = 0) -> tuple[dict[str, int], float, float]:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    base = Heads()
    teacher = copy.deepcopy(base)
    with torch.no_grad():
        for layer in teacher.layers:
            u = torch.randn(DIM, TRUE_RANK, generator=g) / DIM**0.5
            v = torch.randn(TRUE_RANK, DIM, generator=g) / DIM**0.5
            layer.weight += u @ v
    x = torch.randn(128, DIM, generator=g)
    with torch.no_grad():
        y = teacher(x)

    student = copy.deepcopy(base)
    inject(student, ArenaConfig(rank=START_RANK, alpha=START_RANK, lam=lam, prox=prox, targets=(r"layers\.\d$",)))
    # plain SGD is the textbook proximal-gradient setting; the loss is tiny so it needs a large lr
    sgd = torch.optim.SGD([p for p in student.parameters() if p.requires_grad], lr=2.0, momentum=0.9)
    if use_hook:
        register_proximal_hook(sgd, student)
        opt = sgd
    else:
        opt = ArenaOptimizer(sgd, student)
    with torch.no_grad():
        initial = ((student(x) - y) ** 2).mean().item()
    for _ in range(STEPS):
        loss = ((student(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return effective_ranks(student), loss.item(), initial


@pytest.mark.parametrize(
    ("lam", "prox", "use_hook", "seed"),
    [(2e-2, "lr", False, 0), (4e-2, "fixed", True, 1)],  # both: threshold 0.04 per step at lr 2.0
)
def test_arena_recovers_true_rank(lam, prox, use_hook, seed):
    ranks, loss, initial = _train(lam, prox, use_hook, seed)
    assert set(ranks) == {"layers.0", "layers.1", "layers.2"}
    assert all(abs(r - TRUE_RANK) <= 1 for r in ranks.values()), ranks
    assert loss < 1e-2 * initial, (loss, initial)


def test_without_penalty_rank_stays_full():
    ranks, loss, initial = _train(0.0, "lr", False)
    assert ranks == {"layers.0": START_RANK, "layers.1": START_RANK, "layers.2": START_RANK}
    assert loss < 1e-2 * initial
