"""A small, honest training loop: SGD with momentum and a cosine schedule, a progress line, test accuracy, and
checkpoints from which an interrupted run continues exactly (leanconv.train.checkpoint).

Exact resumption: each epoch's sample order is drawn from the run's seed and the epoch number, the checkpoint
keeps the step within the epoch and the RNG states, and a resumed run starts at the next batch of the same order.
With ``workers=0`` (augmentations drawn in the main process) and deterministic algorithms the final weights are
bit-identical to an uninterrupted run's (tested); with workers the augmentations of the resumed epoch differ.
"""
import csv
import os
import resource
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler

from .._extras import training_dependency
from ..nn import parameter_counts
from . import checkpoint as checkpoints
from .device_data import DeviceImages

tqdm = training_dependency("tqdm").tqdm


@dataclass
class TrainResult:
    name: str
    learned_params: int
    dense_params: int
    test_accuracy: float
    seconds: float
    images_per_s: float = 0.0  # training throughput over the run's epochs

    @property
    def compression(self) -> float:
        return self.dense_params / self.learned_params


LOG_COLUMNS = ["run", "family", "epoch", "train_loss", "test_accuracy", "lr", "images_per_s", "peak_memory_mib",
               "learned_params", "dense_params"]


def peak_memory_mib(device) -> float:
    """The peak memory so far: CUDA's allocator peak on a GPU, the process's peak resident set on the CPU."""
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def is_log(path) -> bool:
    """Whether ``path`` starts with this command's CSV header (a log it wrote, which a resumed run appends to)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return f.readline().strip() == ",".join(LOG_COLUMNS)
    except (OSError, UnicodeDecodeError):
        return False


def check_log_path(path) -> None:
    """Raises ValueError unless a CSV log can be appended to at ``path``: an existing log of this command, an empty
    file, or a new file in a writable folder (made if missing). No file is created or changed here, so a refused
    command leaves none behind; a file that is anything else (a checkpoint given by mistake, a user's data) is never
    written."""
    text = str(path)
    if text.endswith(("/", os.sep)):
        raise ValueError(f"leanconv: the CSV log {text} names a folder; give a file path, e.g. {text}run.csv")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"leanconv: the CSV log {path} is a directory; give a file path, e.g. {path}/run.csv")
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise ValueError(f"leanconv: cannot write the CSV log {path}: not a regular file")
        if path.stat().st_size > 0 and not is_log(path):
            raise ValueError(f"leanconv: {path} exists and is not a CSV log of python -m leanconv.train: refusing to "
                             "append to it (give another --log-csv path)")
        if not os.access(path, os.W_OK):
            raise ValueError(f"leanconv: cannot write the CSV log {path}: permission denied")
        return
    try:  # making the folder is the one sure test that it can be made (root's os.access says yes to /proc)
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"leanconv: cannot write the CSV log {path}: {error.strerror}") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise ValueError(f"leanconv: cannot write the CSV log {path}: {path.parent} is not writable")


class CsvLog:
    """One row per epoch (LOG_COLUMNS); appended to, so a resumed run continues its log.

    A run's rows also travel in its checkpoints, so that a stop between the two writes of an epoch's end (the
    checkpoint, then the row) cannot leave the log one row short or one row long: a resume first makes the run's
    rows at the end of the log those of the checkpoint (:meth:`reconcile`)."""

    def __init__(self, path, run: str, family: str, counts):
        self.path, self.run, self.family, self.counts = Path(path), run, family, counts
        check_log_path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists() or self.path.stat().st_size == 0:
            with open(self.path, "a", newline="") as f:
                csv.writer(f).writerow(LOG_COLUMNS)

    def row(self, epoch: int, loss: float, accuracy: float, lr: float, images_per_s: float, peak: float) -> list:
        return [self.run, self.family, str(epoch), f"{loss:.5f}", f"{accuracy:.5f}", f"{lr:.6g}",
                f"{images_per_s:.1f}", f"{peak:.1f}", *map(str, self.counts)]

    def append(self, row: list) -> None:
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow(row)

    def _run_tail(self, body: list, checkpoint_rows: list) -> int:
        """Where this run's rows begin at the end of the log: the earliest point from which the log's rows are the
        checkpoint's (all of them or their first ones), followed only by later epochs of this run where all are
        there. Rows before it (other runs, even of the same name) stay."""
        for start in range(len(body) + 1):
            tail = body[start:]
            if tail[:len(checkpoint_rows)] != checkpoint_rows[:len(tail)]:
                continue
            extra = tail[len(checkpoint_rows):]
            if not extra or (checkpoint_rows and all(
                    r[:1] == [self.run] and r[2:3] and r[2].isdigit() and int(r[2]) > len(checkpoint_rows)
                    for r in extra)):
                return start
        return len(body)

    def reconcile(self, checkpoint_rows: list) -> None:
        """Makes this run's rows at the end of the log those the checkpoint holds (rewritten in place, the file
        replaced at once), where they differ."""
        with open(self.path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
        checkpoint_rows = [list(r) for r in checkpoint_rows]
        header, body = rows[:1], rows[1:]
        wanted = header + body[:self._run_tail(body, checkpoint_rows)] + checkpoint_rows
        if wanted == rows:
            return
        partial = self.path.with_name(self.path.name + ".partial")
        with open(partial, "w", newline="") as f:
            csv.writer(f).writerows(wanted)
        shutil.copymode(self.path, partial)
        os.replace(partial, self.path)


def evaluate(model: nn.Module, batches, device, memory_format=torch.contiguous_format) -> float:
    """Test accuracy over ``batches`` (a DataLoader or any iterable of (images, labels))."""
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    total = 0
    with torch.no_grad():
        for x, y in batches:
            pred = model(x.to(device).contiguous(memory_format=memory_format)).argmax(1)
            correct += (pred == y.to(pred.device)).sum()
            total += y.numel()
    return correct.item() / max(total, 1)


class EpochOrder(Sampler):
    """The samples of one epoch in the order the run's seed and the epoch number give, from batch ``start_batch``
    on (what a resumed run has not yet trained on). Only whole batches: the last partial batch is dropped. Under
    DDP (``world`` processes) each global batch is split into ``world`` equal shards and this rank takes its own."""

    def __init__(self, count: int, batch_size: int, seed: int, epoch: int, start_batch: int = 0, rank: int = 0,
                 world: int = 1):
        order = torch.randperm(count, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        order = order[start_batch * batch_size: (count // batch_size) * batch_size].view(-1, batch_size)
        shard = batch_size // world
        self.order = order[:, rank * shard: (rank + 1) * shard].reshape(-1).tolist()

    def __iter__(self):
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


def parameter_groups(model: nn.Module, weight_decay: float):
    """SGD parameter groups: weight decay on the weights (conv and linear weights, rings, summaries, anchors), none
    on BatchNorm parameters and biases, as the compact-conv papers' recipes (and timm's) do.

    A module that asks for more to be left undecayed says so as timm's models do, with a ``no_weight_decay()``
    method returning the names (relative to itself) of those parameters: coefficients that a method wants free of
    decay. No family's module defines it today (their recipes, docs/<family>.md, decay every learned weight
    tensor); a user's module or model can."""
    no_decay = {id(p) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                for p in m.parameters(recurse=False)}
    no_decay |= {id(p) for name, p in model.named_parameters() if name.rsplit(".", 1)[-1] == "bias"}
    for module in model.modules():
        if callable(getattr(module, "no_weight_decay", None)):
            named, exempt = dict(module.named_parameters()), set(module.no_weight_decay())
            if exempt - set(named):
                raise ValueError(f"leanconv: {type(module).__name__}.no_weight_decay() names parameters it does "
                                 f"not have: {sorted(exempt - set(named))}")
            no_decay |= {id(named[name]) for name in exempt}
    decay = [p for p in model.parameters() if id(p) not in no_decay]
    rest = [p for p in model.parameters() if id(p) in no_decay]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
SCHEDULES = ("onecycle", "cosine", "step")


def make_schedule(kind: str, opt, lr: float, total_steps: int):
    """The learning-rate schedule, stepped once per training step: one-cycle (15% warm-up, then cosine), plain
    cosine decay to zero, or step decay (x0.1 at a third and at two thirds of the run)."""
    if kind == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_steps, pct_start=0.15)
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    if kind == "step":
        third = max(1, total_steps // 3)
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[third, 2 * third], gamma=0.1)
    raise ValueError(f"leanconv: schedule must be one of {SCHEDULES}, got {kind!r}")


def train(name: str, model: nn.Module, train_set, test_set, epochs: int, batch_size: int = 128, lr: float = 0.1,
          weight_decay: float = 5e-4, device="cpu", seed: int = 0, workers: int = 0,
          checkpoint: Optional[str] = None, checkpoint_every: int = 0, resume: bool = False,
          log: Optional[str] = None, family: str = "", label_smoothing: float = 0.0, amp: Optional[str] = None,
          channels_last: bool = False, schedule: str = "onecycle", compile: bool = False,
          options: Optional[dict] = None) -> TrainResult:
    """Trains ``model``; with ``checkpoint`` a checkpoint is written every ``checkpoint_every`` steps (0: only at
    the end of each epoch) and, with ``resume``, training continues from the one found there; with ``log`` a CSV
    row per epoch (LOG_COLUMNS: loss, test accuracy, learning rate, images/s, peak memory) goes there. A progress bar
    (tqdm) shows on a terminal; logs get one line per epoch.

    ``options``: what defines the run (the command line's model, data and recipe options); checkpoints record them
    and a resume refuses a checkpoint whose run differs. By default the arguments given here."""
    if options is None:
        options = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
                   "seed": seed, "family": family, "label_smoothing": label_smoothing, "amp": amp,
                   "schedule": schedule}
    if checkpoint is not None:
        checkpoints.check_destination(checkpoint)
    torch.manual_seed(seed)
    model.to(device)
    device_type = torch.device(device).type
    if amp is not None and (amp not in AMP_DTYPES or (amp == "fp16" and device_type != "cuda")):
        raise ValueError(f"leanconv: amp must be 'bf16' (CPU or GPU) or 'fp16' (GPU), got {amp!r} on {device_type}")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        model.to(memory_format=torch.channels_last)
    # float16 needs loss scaling; bfloat16 has float32's range and does not.
    scaler = torch.amp.GradScaler(device_type, enabled=amp == "fp16")
    # Under torchrun (torch.distributed initialised): DDP, each rank trains on its shard of every global batch of
    # batch_size images, and rank 0 alone prints, logs and checkpoints.
    world = dist.get_world_size() if dist.is_initialized() else 1
    rank = dist.get_rank() if dist.is_initialized() else 0
    if batch_size % world:
        raise ValueError(f"leanconv: the global batch {batch_size} must divide among {world} processes")
    trained = model
    if world > 1:
        on_gpu = torch.device(device).type == "cuda"
        trained = DistributedDataParallel(model, device_ids=[torch.device(device).index] if on_gpu else None)
    steps_per_epoch = len(train_set) // batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"leanconv: {len(train_set)} training images are fewer than one batch of {batch_size}")
    opt = torch.optim.SGD(parameter_groups(model, weight_decay), lr=lr, momentum=0.9, nesterov=True)
    schedule = make_schedule(schedule, opt, lr, epochs * steps_per_epoch)
    if compile:
        trained = torch.compile(trained)  # the training steps; checkpoints and evaluation use the module itself
    start_epoch = start_step = 0
    resumed_rows = None  # the log rows a resumed checkpoint holds (None: it kept none)
    if resume:
        if checkpoint is None:
            raise ValueError("leanconv: resume needs a checkpoint path")
        state = checkpoints.load(checkpoint)  # every rank reads the one file rank 0 writes
        if state is not None:
            checkpoints.check_options(state.get("options"), options)
            try:
                model.load_state_dict(state["model"])
            except RuntimeError as error:
                raise checkpoints.CheckpointError(f"leanconv: the checkpoint {checkpoint} holds another model: "
                                                  f"{str(error).splitlines()[0]}") from None
            opt.load_state_dict(state["optimizer"])
            scaler.load_state_dict(state.get("scaler", {}) or scaler.state_dict())
            schedule.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            start_epoch, start_step = state["epoch"], state["step"]
            resumed_rows = state.get("log_rows")
    # Workers keep the device fed; pinned memory speeds the copies to a GPU.
    loading = {"num_workers": workers, "pin_memory": torch.device(device).type == "cuda",
               "persistent_workers": False}
    # A dataset held on the device (DeviceImages, --data-on-device) is batched and augmented there, no loader.
    on_device = isinstance(train_set, DeviceImages)

    def test_batches():
        if isinstance(test_set, DeviceImages):
            return test_set.batches(range(len(test_set)), 1000)
        return DataLoader(test_set, batch_size=512, **loading)

    def save(epoch: int, step: int) -> None:
        checkpoints.save(checkpoint, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                      "scheduler": schedule.state_dict(), "scaler": scaler.state_dict(),
                                      "rng": torch.get_rng_state(),
                                      "epoch": epoch, "step": step, "seed": seed, "options": options,
                                      "log_rows": log_rows if csv_log else None})

    learned, dense = parameter_counts(model)
    csv_log = CsvLog(log, name, family, (learned, dense)) if log and rank == 0 else None
    log_rows = []  # this run's rows so far, kept in each checkpoint with the state they describe
    if csv_log and resumed_rows is not None and len(resumed_rows) == start_epoch:
        log_rows = [list(r) for r in resumed_rows]
        csv_log.reconcile(log_rows)
    checkpoint = checkpoint if rank == 0 else None  # (after the resume: every rank loaded it)
    started = time.time()
    trained_images, training_seconds = 0, 0.0
    accuracy = None
    for epoch in range(start_epoch, epochs):
        model.train()
        first = start_step if epoch == start_epoch else 0
        order = EpochOrder(len(train_set), batch_size, seed, epoch, first, rank, world)
        if on_device:
            loader = train_set.batches(order.order, batch_size // world, seed, epoch)
        else:
            loader = DataLoader(train_set, batch_size=batch_size // world, sampler=order, drop_last=True,
                                generator=torch.Generator().manual_seed(seed + epoch), **loading)
        bar = tqdm(total=steps_per_epoch, initial=first, desc=f"{name} epoch {epoch + 1}/{epochs}", leave=False,
                   disable=rank != 0 or not sys.stderr.isatty(), dynamic_ncols=True)
        epoch_started, losses = time.time(), []
        for i, (x, y) in enumerate(loader, start=first):
            x = x.to(device, non_blocking=True).contiguous(memory_format=memory_format)
            with torch.autocast(device_type, dtype=AMP_DTYPES.get(amp, torch.bfloat16), enabled=amp is not None):
                loss = F.cross_entropy(trained(x), y.to(device), label_smoothing=label_smoothing)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            schedule.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            done = i + 1
            if checkpoint and checkpoint_every and done % checkpoint_every == 0 and done < steps_per_epoch:
                save(epoch, done)
        bar.close()
        seconds = time.time() - epoch_started
        images = len(order) * world
        trained_images += images
        training_seconds += seconds
        epoch_loss = sum(losses) / max(len(losses), 1)  # this rank's shards
        if rank == 0:
            print(f"{name} epoch {epoch + 1}/{epochs}: loss {epoch_loss:.3f}, {images / max(seconds, 1e-9):.0f} "
                  f"images/s, {time.time() - started:.0f}s", file=sys.stderr, flush=True)
        if csv_log:
            accuracy = evaluate(model, test_batches(), device, memory_format)
            log_rows.append(csv_log.row(epoch + 1, epoch_loss, accuracy, opt.param_groups[0]["lr"],
                                        images / max(seconds, 1e-9), peak_memory_mib(device)))
        if checkpoint:
            save(epoch + 1, 0)  # with the epoch's row: a stop before the row below is mended by the resume
        if csv_log:
            csv_log.append(log_rows[-1])
        if world > 1:
            dist.barrier()  # the next epoch (or a resume) sees rank 0's checkpoint
    if accuracy is None:
        accuracy = evaluate(model, test_batches(), device, memory_format)
    return TrainResult(name, learned, dense, accuracy, time.time() - started,
                       trained_images / training_seconds if training_seconds else 0.0)


TABLE_HEADER = ["| model | learned params | dense-equivalent params | compression | test accuracy | images/s | time (s) |",
                "|---|---:|---:|---:|---:|---:|---:|"]


def table(results) -> str:
    rows = list(TABLE_HEADER)
    for r in results:
        rows.append(f"| {r.name} | {r.learned_params:,} | {r.dense_params:,} | {r.compression:.2f}x | "
                    f"{100 * r.test_accuracy:.2f}% | {r.images_per_s:.0f} | {r.seconds:.0f} |")
    return "\n".join(rows)
