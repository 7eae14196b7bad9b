"""What every trainable model shares: device, optimizer, lr schedule, EMA, checkpoints, DDP."""
import copy
import logging
import os

import torch
from torch import nn

from restore.archs import build_network
from restore.models.lr_scheduler import build_scheduler, lr_factor
from restore.models.memory_format import choose_channels_last, set_memory_format, use_channels_last
from restore.utils.checkpoint import load_network, save_atomic, save_network_file
from restore.utils.dist import get_dist_info
from restore.utils.errors import OptionError
from restore.utils.experiment import LOGGER_NAME
from restore.utils.registry import OPTIMIZER_REGISTRY, check_kwargs
from restore.utils.rng import get_rng_state, set_rng_state

for _optimizer in (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD):
    OPTIMIZER_REGISTRY.register(_optimizer)  # `train.optim_g.type`; register more the same way
OPTIMIZER_KEYS = {"lr", "weight_decay", "betas", "eps", "momentum", "nesterov", "dampening", "amsgrad", "fused"}
# Adam's per-parameter for-loop (torch's default on the CPU) runs ~10 element-wise kernels per tensor
# per step; the fused kernel does one pass. Same update to float rounding.
FUSED_DEVICES = ("cpu", "cuda")


def runs_on_cuda(opt: dict) -> bool:
    """Whether `device` (see select_device) names a GPU: known before the process group exists."""
    name = opt.get("device", "auto")
    if name == "auto":
        return torch.cuda.is_available() and opt.get("num_gpu", "auto") != 0
    try:
        return torch.device(name).type == "cuda"
    except RuntimeError:
        return False  # select_device names the bad value


def select_device(opt: dict) -> torch.device:
    """`device: auto | cpu | cuda | cuda:N`; BasicSR's `num_gpu: 0` also means CPU."""
    name = opt.get("device", "auto")
    if name == "auto":
        use_cuda = runs_on_cuda(opt)
        if use_cuda and get_dist_info()[1] > 1:
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cuda" if use_cuda else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise OptionError(f"device: '{name}' is not a device (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"device: '{name}' requested but CUDA is not available on this machine")
    return device


def build_optimizer(opt: dict, params) -> torch.optim.Optimizer:
    opt = dict(opt)
    kind = opt.pop("type", None)
    cls = OPTIMIZER_REGISTRY.get(kind, "train.optim_g.type")
    for key in opt:
        if key not in OPTIMIZER_KEYS:
            from restore.utils.registry import did_you_mean
            raise OptionError(f"train.optim_g: unknown key '{key}'{did_you_mean(key, OPTIMIZER_KEYS)}")
    check_kwargs(cls, opt, f"optimizer {kind}", "train.optim_g", provided=("params",))
    if "betas" in opt:
        opt["betas"] = tuple(opt["betas"])
    params = list(params)
    if kind in ("Adam", "AdamW") and opt.get("fused") is None:
        opt["fused"] = bool(params) and all(p.device.type in FUSED_DEVICES and p.dtype.is_floating_point
                                            for p in params)
    return cls(params, **opt)


class BaseModel:
    def __init__(self, opt: dict):
        self.opt = opt
        self.is_train = opt["is_train"]
        self.device = select_device(opt)
        self.rank, self.world_size = get_dist_info()
        if opt["network_g"].get("type") == "auto":  # the checkpoint says what it is (docs/published-models.md)
            from restore.inference.loading import auto_network_g
            self.net_g = auto_network_g(opt).to(self.device)
        else:
            self.net_g = build_network(opt["network_g"]).to(self.device)
        self.notes: list[str] = []  # for the training log, which is opened after the model is built
        if self.is_train:  # None: `auto` on the CPU, timed at the first training step
            self.channels_last, why = use_channels_last(opt["train"]["channels_last"], self.net_g, self.device)
            self.notes.append(why)
        else:  # inference: channels_last on the CPU (batch 1 folds nothing)
            self.channels_last = self.device.type == "cpu"
        # batch-1 inference is faster in channels_last on the CPU for every net (memory_format.py)
        self.infer_channels_last = bool(self.channels_last) or self.device.type == "cpu"
        set_memory_format(self.net_g, bool(self.channels_last))
        path = opt["path"]
        if path.get("pretrain_network_g") and opt["network_g"].get("type") != "auto":
            kept = load_network(self.net_g, path["pretrain_network_g"], path["param_key_g"], path["strict_load_g"])
            if kept:  # strict_load_g: false, e.g. an x4 net started from an x2 one
                self.notes.append(f"{path['pretrain_network_g']}: loaded all but {len(kept)} tensors, which keep "
                                  f"their initial values ({', '.join(kept[:6])}{' ...' if len(kept) > 6 else ''})")
        self.net_g_ema = None
        if self.is_train:
            self._init_training()

    def decide_memory_format(self, shape) -> None:
        """`train.channels_last: auto` on the CPU: time both formats on the first batch's shape (rank 0
        times, every rank follows) and log the choice."""
        choice = [None, ""]
        if self.rank == 0:
            choice = list(choose_channels_last(self.net_g, shape, self.amp_dtype))
        if self.world_size > 1:
            torch.distributed.broadcast_object_list(choice, src=0)
        self.channels_last = choice[0]
        if self.rank == 0:
            logging.getLogger(LOGGER_NAME).info(choice[1])

    # --- training set-up ---------------------------------------------------------------------
    def _init_training(self):
        t = self.opt["train"]
        self.ema_decay = t["ema_decay"]
        self.ema_updates = 0
        if self.ema_decay > 0:
            self.net_g_ema = copy.deepcopy(self.net_g).eval().requires_grad_(False)
            path = self.opt["path"]
            if path.get("pretrain_network_g"):
                load_network(self.net_g_ema, path["pretrain_network_g"], "params_ema", path["strict_load_g"])
        self.net_g.train()
        self.optimizer = build_optimizer(t["optim_g"], [p for p in self.net_g.parameters() if p.requires_grad])
        self.base_lrs = [g["lr"] for g in self.optimizer.param_groups]
        self.schedule = build_scheduler(t["scheduler"])
        if hasattr(self.schedule, "base_lr"):
            self.schedule.base_lr = self.base_lrs[0]
        self.amp_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, None: None}[t["amp"]]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=t["amp"] == "fp16")
        self.grad_clip = t["grad_clip"]
        self.train_net = self.net_g
        if t["compile"]:
            self.train_net = torch.compile(self.train_net)
        self.ddp_wrapped = False  # at the first step, once the memory format is fixed (`wrap_for_training`)

    def wrap_for_training(self) -> None:
        """Wrap the network in DDP, once `auto` has chosen the memory format. DDP lays its gradient
        buckets out in the parameters' format at construction; a network converted to channels_last
        after wrapping trained to weights 1e-2 away from the equivalent one-process run's in 20 steps
        (tests/test_distributed.py, which caught it on a machine where `auto` chose channels_last)."""
        if self.world_size > 1 and not self.ddp_wrapped:
            from torch.nn.parallel import DistributedDataParallel
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_net = DistributedDataParallel(self.train_net, device_ids=ids,
                                                     find_unused_parameters=self.opt["find_unused_parameters"])
        self.ddp_wrapped = True

    def update_learning_rate(self, it: int) -> None:
        factor = lr_factor(self.schedule, it, self.opt["train"]["warmup_iter"])
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor

    def current_lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    @torch.no_grad()
    def update_ema(self):
        """EMA with a warm-up: the decay grows as (1 + n) / (10 + n) towards `ema_decay`, so a short
        run's EMA weights are not stuck near the random initialisation (BasicSR's fixed 0.999 needs
        thousands of iterations before `params_ema` is usable)."""
        if self.net_g_ema is None:
            return
        decay = min(self.ema_decay, (1 + self.ema_updates) / (10 + self.ema_updates))
        self.ema_updates += 1
        for ema_p, p in zip(self.net_g_ema.parameters(), self.net_g.parameters()):
            ema_p.lerp_(p.detach(), 1 - decay)
        for ema_b, b in zip(self.net_g_ema.buffers(), self.net_g.buffers()):
            ema_b.copy_(b)

    def eval_net(self) -> nn.Module:
        return self.net_g_ema if self.net_g_ema is not None else self.net_g

    # --- checkpoints ---------------------------------------------------------------------------
    @staticmethod
    def _cpu_state(net):
        return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}

    def save(self, models_dir: str, states_dir: str, it: int, epoch: int, extra: dict) -> None:
        """Network file first, then the state that refers to it; both written atomically."""
        ema = self._cpu_state(self.net_g_ema) if self.net_g_ema is not None else None
        save_network_file(os.path.join(models_dir, f"net_g_{it}.pth"), self._cpu_state(self.net_g), ema)
        state = {"iter": it, "epoch": epoch, "optimizers": [self.optimizer.state_dict()],
                 "ema_updates": self.ema_updates, "channels_last": self.channels_last,
                 "schedulers": [], "scaler": self.scaler.state_dict(), "rng": get_rng_state(), **extra}
        save_atomic(state, os.path.join(states_dir, f"{it}.state"))

    def save_latest(self, models_dir: str) -> None:
        ema = self._cpu_state(self.net_g_ema) if self.net_g_ema is not None else None
        save_network_file(os.path.join(models_dir, "net_g_latest.pth"), self._cpu_state(self.net_g), ema)

    def resume(self, state: dict, net_path: str) -> None:
        load_network(self.net_g, net_path, "params")
        if self.net_g_ema is not None:
            load_network(self.net_g_ema, net_path, "params_ema")
        self.optimizer.load_state_dict(state["optimizers"][0])
        self.ema_updates = state.get("ema_updates", state["iter"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        if self.opt["train"]["channels_last"] == "auto" and isinstance(state.get("channels_last"), bool):
            # the format the run trained in: a resumed run sums in the same order (the cache of
            # measured choices may be gone, or another machine's)
            self.channels_last = state["channels_last"]
            set_memory_format(self.net_g, self.channels_last)
            self.notes = [n for n in self.notes if not n.startswith("train.channels_last:")]
            self.notes.append(f"train.channels_last: auto -> {'channels_last' if self.channels_last else 'nchw'} "
                              f"(the resumed run's format)")
