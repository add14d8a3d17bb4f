"""torch.nn modules of leanconv's compact convolution families: the public names (``__all__``) of every module in
this package, collected (a family's ``nn/<family>.py`` lists its own; a module whose name starts with ``_`` is
private)."""
from .._exports import collect

__all__ = collect(__name__, __path__, globals())
