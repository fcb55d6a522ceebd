"""What makes a run resumable: the optimizers, the data order and the random states.

The parameters are split as in CompressAI's ``examples/train.py``: the entropy
bottleneck's ``quantiles`` are trained only by the auxiliary loss, with their
own Adam; every other parameter by the rate-distortion loss. The data order is
a function of (seed, epoch) alone, so a resumed run skips exactly the batches
it had already seen; the random states of torch, numpy and Python (which draw
the crops) are saved per process and restored.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DistributedSampler


def configure_optimizers(model: nn.Module, lr: float, aux_lr: float) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam on the network's parameters and a separate Adam on the entropy-bottleneck quantiles."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    main = [p for n, p in params.items() if not n.endswith(".quantiles")]
    aux = [p for n, p in params.items() if n.endswith(".quantiles")]
    if not aux:
        raise ValueError(f"{type(model).__name__} has no entropy-bottleneck quantiles to train with the aux loss")
    return torch.optim.Adam(main, lr=lr), torch.optim.Adam(aux, lr=aux_lr)


def aux_parameter_names(model: nn.Module) -> list[str]:
    """Names of the parameters trained only by the auxiliary loss."""
    return [n for n, _ in model.named_parameters() if n.endswith(".quantiles")]


def epoch_indices(dataset_len: int, seed: int, epoch: int, rank: int, world: int) -> list[int]:
    """This process's share of one epoch's shuffled order (``DistributedSampler``, drop_last)."""
    sampler = DistributedSampler(
        range(dataset_len), num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    return list(sampler)


def rng_state() -> dict[str, Any]:
    """The random states of torch (CPU and CUDA), numpy and Python, as tensors and ints only
    (so that ``torch.load(weights_only=True)`` reads them back)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and Python."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
