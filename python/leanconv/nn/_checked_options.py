"""Options that change a layer's function without changing its parameters' shapes (a quantisation width, a channel
rotation, the layout a filter summary is read with) are kept in its state_dict, as int64 scalars or vectors written
from the value the forward uses, and checked on load: a checkpoint of another setting is refused instead of
silently computing another function."""
from typing import Dict, Sequence, Set, Union

import torch

Value = Union[int, Sequence[int]]


def _as_value(value) -> Union[int, tuple]:
    if isinstance(value, torch.Tensor):
        return int(value) if value.dim() == 0 else tuple(int(v) for v in value.reshape(-1).tolist())
    return int(value) if isinstance(value, int) else tuple(int(v) for v in value)


class CheckedOptions:
    """A module mix-in (listed before ``nn.Module``): ``checked_options()`` gives ``{state_dict name: value}`` (an
    int or a tuple of ints); each is written into the state_dict and a checkpoint holding another value is refused
    on load, with ``option_mismatch(name, stored)`` saying why. The names in ``unchecked_when_absent`` were added
    later: a checkpoint without them loads unchecked."""

    unchecked_when_absent: Set[str] = frozenset()

    def checked_options(self) -> Dict[str, Value]:
        raise NotImplementedError

    def option_mismatch(self, name: str, stored: Value) -> str:
        raise NotImplementedError

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for name, value in self.checked_options().items():
            destination[prefix + name] = torch.tensor(_as_value(value), dtype=torch.int64)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        for name, expected in self.checked_options().items():
            key = prefix + name
            if key in state_dict:  # taken out, so that it is not reported as unexpected
                stored = state_dict.pop(key)
                stored = None if stored.is_meta else _as_value(stored)
                if stored is not None and stored != _as_value(expected):
                    error_msgs.append(f"leanconv: {key}: {self.option_mismatch(name, stored)}")
            elif strict and name not in self.unchecked_when_absent:
                missing_keys.append(key)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
