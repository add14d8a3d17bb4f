"""A small, honest training loop: SGD with momentum and a cosine schedule, a progress line, test accuracy."""
import sys
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ..nn import parameter_counts


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


def train(name: str, model: nn.Module, train_set, test_set, epochs: int, batch_size: int = 128, lr: float = 0.1,
          weight_decay: float = 5e-4, device="cpu", seed: int = 0, workers: int = 0) -> TrainResult:
    torch.manual_seed(seed)
    model.to(device)
    generator = torch.Generator().manual_seed(seed)
    # Workers keep the device fed; their augmentations draw from seeds the generator gives (reproducible).
    loading = {"num_workers": workers, "pin_memory": torch.device(device).type == "cuda",
               "persistent_workers": workers > 0}
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=generator, drop_last=True,
                              **loading)
    test_loader = DataLoader(test_set, batch_size=512, **loading)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    steps = epochs * len(train_loader)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    started = time.time()
    for epoch in range(epochs):
        model.train()
        running = 0.0
        for i, (x, y) in enumerate(train_loader):
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            running = 0.9 * running + 0.1 * loss.item() if i else loss.item()
            _progress(f"{name} epoch {epoch + 1}/{epochs}", i + 1, len(train_loader), running, started)
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
