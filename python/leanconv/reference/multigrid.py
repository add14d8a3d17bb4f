"""A multigrid block or conv as the authors' code writes it, in plain PyTorch, for tests and benchmarks: the
module's plain-PyTorch form (:class:`leanconv.nn.multigrid_plain.PlainMultigrid`: ordinary (grouped) ``nn.Conv2d``
layers, separate BatchNorm, add and ReLU modules), with the restriction ``R_k x_k`` computed twice, once on the way
down and again in the correction ``x_k + BN(P_k(x_c - R_k x_k))``. Built from a :class:`leanconv.nn.MultigridBlock`
or :class:`leanconv.nn.MultigridConv2d` with copies of its parameters and buffers, so both compute one function."""
from ..nn.multigrid import MultigridBlock, MultigridConv2d
from ..nn.multigrid_plain import PlainMultigrid


class ReferenceMultigrid(PlainMultigrid):
    def __init__(self, module):
        if not isinstance(module, (MultigridBlock, MultigridConv2d)):
            raise TypeError(f"leanconv: ReferenceMultigrid takes a MultigridBlock or MultigridConv2d, got "
                            f"{type(module).__name__}")
        super().__init__(module)

    def restricted(self, level: int, fine: list):
        return self.restrict[level](fine[level])  # computed again, as the authors' code does
