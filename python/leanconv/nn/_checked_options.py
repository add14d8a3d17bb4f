"""Options that change a layer's function without changing its parameters' shapes (a quantisation width, a channel
rotation) are kept in its state_dict, as int64 scalars written from the value the forward uses, and checked on
load: a checkpoint of another setting is refused instead of silently computing another function."""
import torch


def save_option(destination, prefix: str, name: str, value: int) -> None:
    destination[prefix + name] = torch.tensor(int(value), dtype=torch.int64)


def load_option(state_dict, prefix: str, name: str, expected: int, strict: bool, missing_keys, error_msgs,
                mismatch) -> None:
    """Takes ``prefix + name`` out of ``state_dict`` (so it is not reported as unexpected) and adds
    ``mismatch(stored)`` to the load's errors when it differs from ``expected``; a missing key is missing."""
    key = prefix + name
    if key in state_dict:
        stored = int(state_dict.pop(key))
        if stored != expected:
            error_msgs.append(f"leanconv: {key}: {mismatch(stored)}")
    elif strict:
        missing_keys.append(key)
