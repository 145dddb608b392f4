"""Settings of one fine-tuning run, with a documented default for each and validation up front."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from arena_seg.errors import InputError
from arena_seg.training.methods import METHODS


@dataclass
class FinetuneConfig:
    """How to fine-tune; every field has the default the CLI, the server and the benchmarks share."""

    method: str = "arena"  #: arena | lora | full | linear | bitfit
    rank: int = 16  #: initial rank of every adapted layer (ARENA prunes it per layer)
    lam: float = 0.5  #: l1 weight λ on the gates; the proximal threshold per step is gate lr·λ (see below)
    alpha: float | None = None  #: update scale = alpha / rank; None means alpha = rank (scale 1)
    gate_init: float = 1.0  #: value every gate starts at
    prox: str = "lr"  #: "lr" (threshold lr·λ, proximal gradient) or "fixed" (threshold λ, as SoRA's code)
    targets: tuple[str, ...] | None = None  #: module-name regexes to adapt; None takes the network's defaults
    #: peak learning rate (AdamW) of adapters and head; 5e-3 reached gallbladder Dice 0.649 where 2e-3 gave 0.529
    #: (default network, qkv + decoder targets, 5 shots, 20 epochs, same seed)
    lr: float = 5e-3
    #: gates learn at lr × gate_lr_mult. AdamW moves a gate by about its lr per step whatever the gradient's size,
    #: so with the "lr" proximal step a gate survives only while its gradient's sign is consistent enough
    #: (|mean/RMS| > λ): λ in (0, 1) is a threshold on that consistency, and the faster gate lr lets unneeded
    #: ranks reach zero within a few hundred steps, as a CPU run has
    gate_lr_mult: float = 10.0
    weight_decay: float = 1e-4  #: AdamW weight decay (never on gates)
    #: passes over the support set; each volume gives `num_samples` patches per pass. 80 is for the few shots a
    #: clinician labels: 2 pancreas shots on the default network reached Dice 0.48 after 40 epochs, 0.57 after 80
    epochs: int = 80
    warmup_epochs: int = 2  #: linear warm-up before the cosine decay
    #: patches per volume per pass (the paper: 6). 2 on a CPU: on the default network a step on 4 patches took 2.6×
    #: one on 2 (18 s vs 7 s an epoch of 2 volumes), so more, shorter steps learn more per second
    num_samples: int = 2
    #: how patch centres are drawn: "posneg" (RandCropByPosNegLabel, organ:background 1:1, the paper's) or
    #: "classes" (RandCropByLabelClasses, an equal share per class: small organs are not drowned by large ones)
    sampler: str = "posneg"
    val_every: int = 5  #: epochs between validations (when validation volumes exist)
    patience: int = 4  #: validations without improvement before stopping early
    seed: int = 0  #: seeds patch sampling, head and adapter initialisation
    device: str = "auto"  #: auto | cpu | cuda | cuda:N
    amp: bool = True  #: mixed precision on CUDA (ignored on CPU)
    extra: dict = field(default_factory=dict)  #: caller's notes, copied to the manifest

    def __post_init__(self) -> None:
        problems = []
        if self.method not in METHODS:
            problems.append(f"method must be one of {', '.join(METHODS)} (got {self.method!r})")
        if not (isinstance(self.rank, int) and self.rank >= 1):
            problems.append(f"rank must be an integer ≥ 1 (got {self.rank!r})")
        if not self.lam >= 0:
            problems.append(f"lam must be ≥ 0 (got {self.lam!r})")
        if self.sampler not in ("posneg", "classes"):
            problems.append(f"sampler must be 'posneg' or 'classes' (got {self.sampler!r})")
        if self.prox not in ("lr", "fixed"):
            problems.append(f"prox must be 'lr' or 'fixed' (got {self.prox!r})")
        if not self.lr > 0:
            problems.append(f"lr must be > 0 (got {self.lr!r})")
        if not self.gate_lr_mult > 0:
            problems.append(f"gate_lr_mult must be > 0 (got {self.gate_lr_mult!r})")
        for name in ("epochs", "num_samples", "val_every", "patience"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                problems.append(f"{name} must be an integer ≥ 1 (got {value!r})")
        if not (isinstance(self.warmup_epochs, int) and self.warmup_epochs >= 0):
            problems.append(f"warmup_epochs must be an integer ≥ 0 (got {self.warmup_epochs!r})")
        if problems:
            raise InputError("; ".join(problems))

    def to_dict(self) -> dict:
        return asdict(self)
