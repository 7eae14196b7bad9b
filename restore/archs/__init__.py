"""Network architectures. Every `*_arch.py` module in this folder registers its classes in
ARCH_REGISTRY when imported; `build_network({'type': 'EDSR', ...})` builds one from options."""
from restore.utils.registry import ARCH_REGISTRY, Registry

Registry.import_all("restore.archs", "_arch.py")


def build_network(opt: dict, where: str = "network_g"):
    return ARCH_REGISTRY.build(opt, where)


def after_optimizer_step(net) -> int:
    """Run the post-step hook of every layer that declares one (`after_optimizer_step()`, e.g. a CSC
    layer projecting its atoms back to unit norm), so a trainer needs to know no layer by name.
    Returns how many layers ran one (0 for most nets: then it does nothing)."""
    hooked = [m for m in net.modules() if callable(getattr(m, "after_optimizer_step", None))]
    for module in hooked:
        module.after_optimizer_step()
    return len(hooked)


__all__ = ["ARCH_REGISTRY", "build_network", "after_optimizer_step"]
