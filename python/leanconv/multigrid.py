"""Tools of the multigrid family: measuring the grouped-conv kernel choice for a model's own shapes.

``tune(model, example_input)`` runs the model once (in eval mode: its state is left as it was) to see every
:class:`leanconv.nn.GroupedConv2d`'s input shape, times forward + backward of each distinct shape on leanconv's kernel and on aten's convolution (median of
``repeats``), and records the faster one (``leanconv.ops.grouped_conv2d_choices()`` lists what is recorded). The
choices live in the process (C++ and Python modules read the same table) and are not saved with the model.
"""
import statistics
import time
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .nn.multigrid import GroupedConv2d
from .ops.multigrid import grouped_conv2d, record_grouped_conv2d_choice


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(step, device, repeats: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        step()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _shape_key(conv: GroupedConv2d, x: torch.Tensor) -> Tuple:
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return (x.device.type, x.dtype, channels_last, conv.in_channels, conv.out_channels, conv.groups,
            conv.kernel_size[0], conv.stride[0], (x.shape[2], x.shape[3]))


def tune(model: nn.Module, example_input: torch.Tensor, repeats: int = 5) -> List[Dict]:
    """Measures and records the faster grouped-conv path for every shape the model's GroupedConv2d layers see on
    ``example_input``; returns one row per shape: its key, both times (seconds) and the choice."""
    seen: Dict[Tuple, Tuple[GroupedConv2d, torch.Tensor]] = {}

    def record(module, args):
        seen.setdefault(_shape_key(module, args[0]), (module, args[0].detach()))  # returns None: args unchanged

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, GroupedConv2d)]
    # Only measures: the model's state is left as it was. In eval mode the forward updates no BatchNorm statistics
    # and draws no dropout; each module's own mode is put back after.
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            model(example_input)
    finally:
        for hook in hooks:
            hook.remove()
        for module, training in modes:
            module.training = training
    rows = []
    for key, (conv, x) in seen.items():
        x = x.clone().requires_grad_()
        weight = conv.weight.detach().clone().requires_grad_()
        args = (conv.stride, conv.padding, conv.dilation, conv.groups)

        def step(run):
            def go():
                x.grad = weight.grad = None
                run(x, weight, None, *args).sum().backward()
            return go

        kernel = _median_time(step(grouped_conv2d), x.device, repeats)
        aten = _median_time(step(F.conv2d), x.device, repeats)
        record_grouped_conv2d_choice(*key, use_kernel=kernel < aten)
        rows.append({"shape": key, "kernel_s": kernel, "aten_s": aten, "use_kernel": kernel < aten})
    return rows


__all__ = ["tune"]
