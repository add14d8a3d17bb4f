"""leanconv's operators, one module per family; importing this package registers every op's fake kernel. The public
names (``__all__``) of every module in this package, collected (a family's ``ops/<family>.py`` lists its own)."""
from .._exports import collect

__all__ = collect(__name__, __path__, globals())
