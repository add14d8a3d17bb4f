"""FSNet tools: quantised export of filter summaries, model size, and differentiable FSNet (DFSNet).

Differentiable FSNet, as implemented here (the paper's exact mechanism was not available): a
:class:`DifferentiableFilterSummaryConv2d` holds one candidate :class:`FilterSummaryConv2d` per compression
ratio and mixes their outputs with softmax weights of learned architecture parameters ``alpha`` (a DARTS-style
continuous relaxation). Training alternates updates of the weights (summaries, BN, head) on training batches
and of the ``alpha`` on held-out batches (first-order); :func:`discretize` then keeps each layer's argmax
candidate as a plain FilterSummaryConv2d. An optional ``size_penalty`` adds the softmax-expected parameter count
to the loss so the search trades accuracy against size.
"""
import math
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor, nn

from .nn.filter_summary import FilterSummaryConv2d, quantize


# ---- quantised export ------------------------------------------------------------------------------------

def export_quantized(model: nn.Module) -> Dict[str, Dict[str, object]]:
    """Integer summaries and scales of every quantised FilterSummaryConv2d, by module name.

    Each entry holds ``q`` (int8 tensor), ``scale`` (float32 scalar tensor) and ``bits``. Loading them with
    :func:`load_quantized` reproduces the fake-quantised outputs exactly."""
    exported = {}
    for name, module in model.named_modules():
        if isinstance(module, FilterSummaryConv2d) and module.quant_bits is not None:
            q, scale = quantize(module.summary, module.quant_bits, module.quant_scale if module._scale_fixed else None)
            exported[name] = {"q": q.to(torch.int8).cpu(), "scale": scale.detach().float().cpu(),
                              "bits": module.quant_bits}
    return exported


def load_quantized(model: nn.Module, exported: Dict[str, Dict[str, object]]) -> nn.Module:
    """Sets each named layer's summary to q * scale and fixes its quantisation scale. Every entry is checked first
    (a FilterSummaryConv2d of that name, the same bit width, integers of exactly the summary's shape within the
    width, a positive finite scale): a mismatched export changes nothing."""
    modules = dict(model.named_modules())
    checked = [(modules.get(name), _checked_entry(modules.get(name), name, entry)) for name, entry in exported.items()]
    for module, (q, scale) in checked:
        module.fix_quant_scale(scale)
        with torch.no_grad():
            module.summary.copy_(q.to(module.summary.device, module.summary.dtype) * module.quant_scale)
    return model


def _checked_entry(module, name: str, entry) -> Tuple[Tensor, float]:
    if not isinstance(module, FilterSummaryConv2d):
        raise KeyError(f"leanconv: {name!r} is not a FilterSummaryConv2d of this model")
    if not isinstance(entry, dict) or not {"q", "scale", "bits"} <= set(entry):
        raise ValueError(f"leanconv: {name}: an export entry holds 'q', 'scale' and 'bits' "
                         "(leanconv.filter_summary.export_quantized)")
    if module.quant_bits != entry["bits"]:
        raise ValueError(f"leanconv: {name}: the model quantises to {module.quant_bits} bits, the export to "
                         f"{entry['bits']}")
    q = torch.as_tensor(entry["q"])
    if tuple(q.shape) != tuple(module.summary.shape):
        raise ValueError(f"leanconv: {name}: the export's summary has shape {tuple(q.shape)}, the layer's "
                         f"{tuple(module.summary.shape)}")
    qmax = 2 ** (module.quant_bits - 1) - 1
    if q.is_floating_point() or q.is_complex() or (q.numel() and int(q.to(torch.int64).abs().max()) > qmax):
        raise ValueError(f"leanconv: {name}: the export's summary must be integers within +-{qmax} "
                         f"({module.quant_bits} bits)")
    scale = torch.as_tensor(entry["scale"])
    if scale.numel() != 1 or not math.isfinite(float(scale)) or not float(scale) > 0:
        raise ValueError(f"leanconv: {name}: the export's scale must be one positive finite number, got {scale}")
    return q, float(scale)


def model_size_bytes(model: nn.Module, float_bytes: int = 4) -> int:
    """Bytes to store the model's learned parameters: quantised summaries at their bit width plus one scale,
    everything else at ``float_bytes`` per parameter (buffers such as BN statistics not counted)."""
    size = 0
    quantised = set()
    for module in model.modules():
        if isinstance(module, FilterSummaryConv2d) and module.quant_bits is not None:
            size += (module.summary.numel() * module.quant_bits + 7) // 8 + 4
            quantised.add(id(module.summary))
    size += sum(p.numel() * float_bytes for p in model.parameters() if id(p) not in quantised)
    return size


# ---- differentiable FSNet ---------------------------------------------------------------------------------

class DifferentiableFilterSummaryConv2d(nn.Module):
    """A softmax-weighted mixture of FilterSummaryConv2d candidates, one per compression ratio."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 bias: bool = True, compressions: Sequence[float] = (9, 18, 36), quant_bits=None, device=None,
                 dtype=None):
        super().__init__()
        if len(compressions) < 1:
            raise ValueError("leanconv: at least one candidate compression is needed")
        self.compressions = tuple(compressions)
        self.candidates = nn.ModuleList(
            FilterSummaryConv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, bias=False,
                                compression=c, quant_bits=quant_bits, device=device, dtype=dtype)
            for c in self.compressions)
        self.bias = nn.Parameter(torch.zeros(out_channels, device=device, dtype=dtype)) if bias else None
        self.alpha = nn.Parameter(torch.zeros(len(self.compressions), device=device, dtype=dtype))

    def mixture(self) -> Tensor:
        return torch.softmax(self.alpha, 0)

    def forward(self, input: Tensor) -> Tensor:
        weights = self.mixture()
        out = sum(w * candidate(input) for w, candidate in zip(weights, self.candidates))
        if self.bias is not None:
            out = out + self.bias.view(-1, 1, 1).to(out.dtype)
        return out

    def expected_params(self) -> Tensor:
        """Softmax-expected learned parameters of the layer (differentiable w.r.t. alpha)."""
        sizes = torch.tensor([float(c.summary.numel()) for c in self.candidates], device=self.alpha.device)
        return (self.mixture() * sizes).sum()

    def discretize(self) -> FilterSummaryConv2d:
        """The argmax candidate as a plain FilterSummaryConv2d (with this layer's bias)."""
        best = self.candidates[int(torch.argmax(self.alpha))]
        layer = FilterSummaryConv2d(best.in_channels, best.out_channels, best.kernel_size, best.stride, best.padding,
                                    best.dilation, bias=self.bias is not None, compression=best.compression_arg,
                                    quant_bits=best.quant_bits, device=best.summary.device, dtype=best.summary.dtype)
        with torch.no_grad():
            layer.summary.copy_(best.summary)
            if self.bias is not None:
                layer.bias.copy_(self.bias)
        return layer

    def extra_repr(self) -> str:
        mix = ", ".join(f"{c}:{w:.2f}" for c, w in zip(self.compressions, self.mixture().tolist()))
        return f"compressions=({mix})"


def arch_parameters(model: nn.Module) -> List[nn.Parameter]:
    return [m.alpha for m in model.modules() if isinstance(m, DifferentiableFilterSummaryConv2d)]


def weight_parameters(model: nn.Module) -> List[nn.Parameter]:
    arch = {id(p) for p in arch_parameters(model)}
    return [p for p in model.parameters() if id(p) not in arch]


def expected_params(model: nn.Module) -> Tensor:
    layers = [m for m in model.modules() if isinstance(m, DifferentiableFilterSummaryConv2d)]
    return sum(m.expected_params() for m in layers) if layers else torch.zeros(())


def discretize(model: nn.Module) -> nn.Module:
    """Replaces every DifferentiableFilterSummaryConv2d of the model (in place) by its argmax candidate."""
    for name, child in list(model.named_children()):
        if isinstance(child, DifferentiableFilterSummaryConv2d):
            setattr(model, name, child.discretize())
        else:
            discretize(child)
    return model


def search_step(model: nn.Module, loss_fn, train_batch, val_batch, weight_opt, arch_opt,
                size_penalty: float = 0.0) -> Dict[str, float]:
    """One first-order DFSNet step: the architecture on a held-out batch, then the weights on a training batch."""
    x_val, y_val = val_batch
    arch_opt.zero_grad(set_to_none=True)
    arch_loss = loss_fn(model(x_val), y_val) + size_penalty * expected_params(model)
    arch_loss.backward()
    arch_opt.step()
    x, y = train_batch
    weight_opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    weight_opt.step()
    return {"loss": loss.item(), "arch_loss": arch_loss.item()}


__all__ = ["export_quantized", "load_quantized", "model_size_bytes", "DifferentiableFilterSummaryConv2d",
           "arch_parameters", "weight_parameters", "expected_params", "discretize", "search_step"]
