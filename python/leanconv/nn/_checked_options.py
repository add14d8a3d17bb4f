"""Options that change a layer's function without changing its parameters' shapes (a quantisation width, a channel
rotation) are kept in its state_dict, as int64 scalars written from the value the forward uses, and checked on
load: a checkpoint of another setting is refused instead of silently computing another function."""
from typing import Dict

import torch


class CheckedOptions:
    """A module mix-in (listed before ``nn.Module``): ``checked_options()`` gives ``{state_dict name: value}``; each
    is written into the state_dict and a checkpoint holding another value is refused on load, with
    ``option_mismatch(name, stored)`` saying why."""

    def checked_options(self) -> Dict[str, int]:
        raise NotImplementedError

    def option_mismatch(self, name: str, stored: int) -> str:
        raise NotImplementedError

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for name, value in self.checked_options().items():
            destination[prefix + name] = torch.tensor(int(value), dtype=torch.int64)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        for name, expected in self.checked_options().items():
            key = prefix + name
            if key in state_dict:  # taken out, so that it is not reported as unexpected
                stored = int(state_dict.pop(key))
                if stored != expected:
                    error_msgs.append(f"leanconv: {key}: {self.option_mismatch(name, stored)}")
            elif strict:
                missing_keys.append(key)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
