"""Network architectures. Every `*_arch.py` module in this folder registers its classes in
ARCH_REGISTRY when imported; `build_network({'type': 'EDSR', ...})` builds one from options."""
from restore.utils.registry import ARCH_REGISTRY, Registry

Registry.import_all("restore.archs", "_arch.py")


def build_network(opt: dict, where: str = "network_g"):
    return ARCH_REGISTRY.build(opt, where)


__all__ = ["ARCH_REGISTRY", "build_network"]
