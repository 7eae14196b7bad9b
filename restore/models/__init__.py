"""Models: a network plus how to train and evaluate it. Every `*_model.py` module registers its
classes in MODEL_REGISTRY; `model_type` in the options names one."""
from restore.utils.registry import MODEL_REGISTRY, Registry

Registry.import_all("restore.models", "_model.py")


def build_model(opt: dict):
    return MODEL_REGISTRY.get(opt["model_type"], "model_type")(opt)


__all__ = ["MODEL_REGISTRY", "build_model"]
