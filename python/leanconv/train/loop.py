"""A small, honest training loop: SGD with momentum and a cosine schedule, a progress line, test accuracy, and
checkpoints from which an interrupted run continues exactly (leanconv.train.checkpoint).

Exact resumption: each epoch's sample order is drawn from the run's seed and the epoch number, the checkpoint
keeps the step within the epoch and the RNG states, and a resumed run starts at the next batch of the same order.
With ``workers=0`` (augmentations drawn in the main process) and deterministic algorithms the final weights are
bit-identical to an uninterrupted run's (tested); with workers the augmentations of the resumed epoch differ.
"""
import sys
import time
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Sampler

from ..nn import parameter_counts
from . import checkpoint as checkpoints


@dataclass
class TrainResult:
    name: str
    learned_params: int
    dense_params: int
    test_accuracy: float
    seconds: float

    @property
    def compression(self) -> float:
        return self.dense_params / self.learned_params


def _progress(prefix: str, done: int, total: int, loss: float, started: float) -> None:
    if not sys.stderr.isatty() and done != total:
        return  # one line per epoch in logs; a live bar on a terminal
    width = 30
    filled = int(width * done / max(total, 1))
    bar = "#" * filled + "." * (width - filled)
    end = "\n" if done == total else ""
    sys.stderr.write(f"\r{prefix} [{bar}] {done}/{total} loss {loss:.3f} {time.time() - started:.0f}s{end}")
    sys.stderr.flush()


def evaluate(model: nn.Module, loader: DataLoader, device) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            pred = model(x.to(device)).argmax(1)
            correct += (pred.cpu() == y).sum().item()
            total += y.numel()
    return correct / max(total, 1)


class EpochOrder(Sampler):
    """The samples of one epoch in the order the run's seed and the epoch number give, from batch ``start_batch``
    on (what a resumed run has not yet trained on). Only whole batches: the last partial batch is dropped."""

    def __init__(self, count: int, batch_size: int, seed: int, epoch: int, start_batch: int = 0):
        order = torch.randperm(count, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        self.order = order[start_batch * batch_size: (count // batch_size) * batch_size].tolist()

    def __iter__(self):
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


def train(name: str, model: nn.Module, train_set, test_set, epochs: int, batch_size: int = 128, lr: float = 0.1,
          weight_decay: float = 5e-4, device="cpu", seed: int = 0, workers: int = 0,
          checkpoint: Optional[str] = None, checkpoint_every: int = 0, resume: bool = False) -> TrainResult:
    """Trains ``model``; with ``checkpoint`` a checkpoint is written every ``checkpoint_every`` steps (0: only at
    the end of each epoch) and, with ``resume``, training continues from the one found there."""
    torch.manual_seed(seed)
    model.to(device)
    steps_per_epoch = len(train_set) // batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"leanconv: {len(train_set)} training images are fewer than one batch of {batch_size}")
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch,
                                                   pct_start=0.15)
    start_epoch = start_step = 0
    if resume:
        if checkpoint is None:
            raise ValueError("leanconv: resume needs a checkpoint path")
        state = checkpoints.load(checkpoint)
        if state is not None:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            start_epoch, start_step = state["epoch"], state["step"]
    # Workers keep the device fed; pinned memory speeds the copies to a GPU.
    loading = {"num_workers": workers, "pin_memory": torch.device(device).type == "cuda",
               "persistent_workers": False}
    test_loader = DataLoader(test_set, batch_size=512, **loading)

    def save(epoch: int, step: int) -> None:
        checkpoints.save(checkpoint, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                      "scheduler": schedule.state_dict(), "rng": torch.get_rng_state(),
                                      "epoch": epoch, "step": step, "seed": seed})

    started = time.time()
    for epoch in range(start_epoch, epochs):
        model.train()
        first = start_step if epoch == start_epoch else 0
        order = EpochOrder(len(train_set), batch_size, seed, epoch, first)
        loader = DataLoader(train_set, batch_size=batch_size, sampler=order, drop_last=True,
                            generator=torch.Generator().manual_seed(seed + epoch), **loading)
        running = 0.0
        for i, (x, y) in enumerate(loader, start=first):
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            running = 0.9 * running + 0.1 * loss.item() if i > first else loss.item()
            _progress(f"{name} epoch {epoch + 1}/{epochs}", i + 1, steps_per_epoch, running, started)
            done = i + 1
            if checkpoint and checkpoint_every and done % checkpoint_every == 0 and done < steps_per_epoch:
                save(epoch, done)
        if checkpoint:
            save(epoch + 1, 0)
    accuracy = evaluate(model, test_loader, device)
    learned, dense = parameter_counts(model)
    return TrainResult(name, learned, dense, accuracy, time.time() - started)


def table(results) -> str:
    rows = ["| model | learned params | dense-equivalent params | compression | test accuracy | time (s) |",
            "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        rows.append(f"| {r.name} | {r.learned_params:,} | {r.dense_params:,} | {r.compression:.2f}x | "
                    f"{100 * r.test_accuracy:.2f}% | {r.seconds:.0f} |")
    return "\n".join(rows)
