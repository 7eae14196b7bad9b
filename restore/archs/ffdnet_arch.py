"""FFDNet (Zhang, Zuo and Zhang, "FFDNet: Toward a Fast and Flexible Solution for CNN-Based Image
Denoising", TIP 2018): the image is pixel-unshuffled by 2, a noise-level map is appended as one more
channel, a plain conv-ReLU stack runs at half resolution and a pixel shuffle restores the size.

The layer layout, `model.<i>` with the convs at even indices and ReLUs between, is KAIR's, so KAIR's
published `ffdnet_gray.pth` (num_feat 64, num_layer 15) and `ffdnet_color.pth` (3 channels,
num_feat 96, num_layer 12) load unchanged (`restore-infer --ckpt ffdnet_gray.pth --arch FFDNet
--arch-opt sigma=25`). spandrel 0.4.2 does not detect FFDNet. The noise level is an option in 8-bit
units (`sigma`, used whenever `forward` gets none), so FFDNet runs wherever a one-input net does;
`forward(x, sigma)` takes a per-image level (a tensor of shape (B,) or (B, 1, 1, 1), 8-bit units).
"""
import torch
from torch import nn
from torch.nn import functional as F

from restore.utils.errors import OptionError
from restore.utils.registry import ARCH_REGISTRY

SHUFFLE = 2


@ARCH_REGISTRY.register()
class FFDNet(nn.Module):
    def __init__(self, num_in_ch: int = 1, num_out_ch: int = 1, num_feat: int = 64, num_layer: int = 15,
                 sigma: float = 25.0):
        super().__init__()
        if num_layer < 2:
            raise OptionError(f"network_g.num_layer: needs at least 2 layers, got {num_layer}")
        if sigma < 0:
            raise OptionError(f"network_g.sigma: a noise level is >= 0, got {sigma}")
        self.sigma = float(sigma)
        widths = [num_in_ch * SHUFFLE ** 2 + 1] + [num_feat] * (num_layer - 1) + [num_out_ch * SHUFFLE ** 2]
        layers = []
        for i in range(num_layer):
            layers.append(nn.Conv2d(widths[i], widths[i + 1], 3, padding=1))
            if i < num_layer - 1:
                layers.append(nn.ReLU(inplace=True))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float | None = None) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")  # odd sides: repeat the last row/column
        x = F.pixel_unshuffle(x, SHUFFLE)
        level = torch.as_tensor(self.sigma if sigma is None else sigma, dtype=x.dtype, device=x.device)
        level = (level / 255.0).reshape(-1, 1, 1, 1).expand(x.shape[0], 1, *x.shape[-2:])
        x = self.model(torch.cat([x, level.contiguous(memory_format=torch.channels_last)
                                  if x.is_contiguous(memory_format=torch.channels_last) else level], 1))
        return F.pixel_shuffle(x, SHUFFLE)[..., :h, :w]
