"""Shared holders: a module whose tensors several layers use (a generated family's ring, a shared family's anchor).

The layers keep a plain reference to the holder, not a submodule, so the holder is stored once in the state_dict
and listed once by ``parameters()`` (DDP-safe). The holder must then be registered on the model that owns the
layers. A global module-registration hook notes when it is; a layer whose holder is registered nowhere warns
once, since ``parameters()``, ``.to()``, ``.half()`` and the state_dict would all miss it.
"""
import warnings

import torch
from torch import nn


class SharedHolder(nn.Module):
    registration_example = "model.holder = holder"  # how a user registers it; subclasses say it in their terms

    def __init__(self):
        super().__init__()
        self._registered = False
        self._warned_unregistered = False

    def check_registered(self, user: str) -> None:
        if not self._registered and not self._warned_unregistered and not torch.compiler.is_compiling():
            self._warned_unregistered = True
            warnings.warn(f"leanconv: this {user}'s {type(self).__name__} is registered on no module, so parameters(), "
                          ".to(), .half() and the state_dict of the model all miss it: register it on the model that "
                          f"owns the layers ({self.registration_example})", stacklevel=4)


def check_input_against(input, tensor, name: str) -> None:
    """The input of a layer against the shared tensor it uses (same messages as the C++ modules): one device, and
    one dtype unless autocast is on."""
    if input.device != tensor.device:
        raise RuntimeError(f"leanconv: input and {name} must be on the same device, got {input.device} and "
                           f"{tensor.device}")
    if input.dtype != tensor.dtype and not torch.is_autocast_enabled(input.device.type):
        raise RuntimeError(f"leanconv: input and {name} must have the same dtype, got {input.dtype} and {tensor.dtype}")


def _note_registration(module, name, submodule):
    if isinstance(submodule, SharedHolder):
        submodule._registered = True


torch.nn.modules.module.register_module_module_registration_hook(_note_registration)
