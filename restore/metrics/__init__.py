"""Image-quality metrics. Every module in this folder registers its metric functions in
METRIC_REGISTRY; option files name them under `val.metrics.<any name>.type`."""
import inspect

from restore.utils.registry import METRIC_REGISTRY, Registry

Registry.import_all("restore.metrics", ".py")


def calculate_metric(data: dict, opt: dict, where: str = "val.metrics"):
    """Call the metric named by `opt['type']` with the images in `data` and the other keys of opt.

    `data` may carry `gt_channels` (channels of the GT file as stored, which the literature protocol
    needs); it is passed only to metrics that take it.
    """
    opt = dict(opt)
    opt.pop("better", None)  # used by best-metric tracking, not by the metric itself
    data = dict(data)
    if "gt_channels" in data:
        channels = data.pop("gt_channels")
        if opt.get("type") in METRIC_REGISTRY and \
                "gt_channels" in inspect.signature(METRIC_REGISTRY.get(opt["type"])).parameters:
            data["gt_channels"] = None if channels is None else int(channels)
    return METRIC_REGISTRY.build(opt, where, **data)


__all__ = ["METRIC_REGISTRY", "calculate_metric"]
