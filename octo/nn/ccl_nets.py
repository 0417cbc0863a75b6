"""Counter-Current Learning network pairs: forward and feedback networks on one skeleton.

Every layer holds two modules with their own parameters: ``fwd`` maps the layer's input to its output (data
direction) and ``fb`` maps the output back to the input (target direction, reversed shape). The forward chain
runs the data up; the feedback chain runs the target down (the K one-hot class vectors, or the image for the
autoencoder). With layers 0..L-1 the chains give

    forward  h_0 = x,  h_{i+1} = layers[i].fwd(h_i)        ->  [h_0, ..., h_L]
    feedback r_L = t,  r_i     = layers[i].fb(r_{i+1})     ->  [r_0, ..., r_L]

and h_i pairs with r_i (same shape up to flattening). With ``detach=True`` every module's input is detached,
so a module's parameters only see the loss of the pair its own output belongs to. No losses here (those are in
``octo.algorithms.ccl``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from octo.utils.errors import ConfigError, check_choice, check_int_list

ACTIVATIONS = {"elu": F.elu, "relu": F.relu, "tanh": torch.tanh, "leaky_relu": F.leaky_relu, "selu": F.selu}
#: 0 none, 1 BatchNorm on the module input, 2 BatchNorm on the linear map's output (before the activation)
BN_MODES = (0, 1, 2)
CNN_ARCHS = ("cnn", "cnn_pool")
BIAS_INITS = ("zero", "default")
AE_INITS = ("legacy", "default")


class Unit(nn.Module):
    """One direction of a layer: [reshape] -> [x2 upsample] -> [BN in] -> op -> [BN out] -> act -> [max-pool].

    ``act=None`` makes a bare linear/conv map (the last module of either chain): no BatchNorm, no activation.
    ``bn_affine=False`` gives BatchNorm without gamma/beta, which is what the published code trains (its
    gamma/beta exist but are in no optimiser); ``True`` adds trained gamma/beta (a departure).
    """

    def __init__(self, op: nn.Linear | nn.Conv2d, act: str | None, bn: int = 0, *, upsample: bool = False,
                 pool: bool = False, in_shape: Sequence[int] | None = None, bn_affine: bool = False) -> None:
        super().__init__()
        check_choice("model.fw_bn/bw_bn", bn, BN_MODES)
        if act is not None:
            check_choice("model.act", act, tuple(ACTIVATIONS))
        self.op = op
        self.act = act
        self.upsample, self.pool = upsample, pool
        self.in_shape = tuple(in_shape) if in_shape is not None else None
        self.bn_mode = bn if act is not None else 0
        conv = isinstance(op, nn.Conv2d)
        width = {1: op.in_channels if conv else op.in_features,
                 2: op.out_channels if conv else op.out_features}
        self.bn = ((nn.BatchNorm2d if conv else nn.BatchNorm1d)(width[self.bn_mode], affine=bn_affine)
                   if self.bn_mode else None)

    def forward(self, x: Tensor) -> Tensor:
        if self.in_shape is not None:
            x = x.reshape(x.shape[0], *self.in_shape)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        if self.bn_mode == 1:
            x = self.bn(x)
        x = self.op(x)
        if self.bn_mode == 2:
            x = self.bn(x)
        if self.act is not None:
            x = ACTIVATIONS[self.act](x)
        if self.pool:
            x = F.max_pool2d(x, 2)
        return x


class DualLayer(nn.Module):
    """A forward module and its feedback module."""

    def __init__(self, fwd: Unit, fb: Unit) -> None:
        super().__init__()
        self.fwd, self.fb = fwd, fb


class DualNet(nn.Module):
    """Base of the three network pairs: an ordered ``layers`` dict of :class:`DualLayer`."""

    #: "classification" (feedback input = the K one-hot class vectors) or "autoencoder" (feedback input = x)
    task = "classification"

    def __init__(self, input_shape: Sequence[int]) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        #: the spatial size the network needs (the algorithm resizes/pads MNIST to it); None = any
        self.input_hw: tuple[int, int] | None = None
        self.layers = nn.ModuleDict()

    @property
    def names(self) -> list[str]:
        return list(self.layers)

    def forward_chain(self, x: Tensor, detach: bool = True) -> list[Tensor]:
        """``[h_0 = x, ..., h_L]``; ``detach`` cuts the graph at every module input (CCL), else end to end."""
        hs = [x]
        for layer in self.layers.values():
            hs.append(layer.fwd(hs[-1].detach() if detach else hs[-1]))
        return hs

    def reverse_chain(self, t: Tensor, detach: bool = True) -> list[Tensor]:
        """``[r_0, ..., r_L = t]``: the feedback chain from the top target down to the input shape."""
        rs = [t]
        for layer in reversed(list(self.layers.values())):
            rs.append(layer.fb(rs[-1].detach() if detach else rs[-1]))
        return rs[::-1]

    def forward(self, x: Tensor) -> Tensor:
        """The forward network's output (logits, or the reconstruction), end to end."""
        return self.forward_chain(x, detach=False)[-1]


def _positive_ints(name: str, values: Sequence[int]) -> list[int]:
    return check_int_list(name, list(values), 1, hint="positive ints")


class CCLMLP(DualNet):
    """Fully connected pair: ``d_in -> hidden... -> K``, no biases; the output module and the
    first feedback module are bare linear maps. MNIST/FMNIST: hidden [256]*5; CIFAR: [1024]*3."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (256,) * 5,
                 act: str = "elu", fw_bn: int = 0, bw_bn: int = 0, bn_affine: bool = False) -> None:
        super().__init__(input_shape)
        dims = [math.prod(self.input_shape), *_positive_ints("model.hidden", hidden), int(num_classes)]
        n = len(dims) - 1
        for i in range(n):
            name = "output" if i == n - 1 else f"enc{i + 1}"
            fwd = Unit(nn.Linear(dims[i], dims[i + 1], bias=False), None if i == n - 1 else act, fw_bn,
                       in_shape=(dims[0],) if i == 0 else None, bn_affine=bn_affine)
            fb = Unit(nn.Linear(dims[i + 1], dims[i], bias=False), None if i == 0 else act, bw_bn,
                      bn_affine=bn_affine)
            self.layers[name] = DualLayer(fwd, fb)
        self.num_classes = int(num_classes)


class CCLConvNet(DualNet):
    """Convolutional pair: five 3x3 conv layers then a bias-free linear output.

    ``arch="cnn"``: stride-2 convs with bias (the feedback module upsamples x2 then a stride-1 conv back);
    ``arch="cnn_pool"``: stride-1 convs without bias, each followed by 2x2 max-pool (feedback: upsample,
    conv). ``input_size`` is the side the network runs at (32 in the published code: MNIST is padded/resized
    to it by the algorithm); it must be divisible by 2**len(channels).
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int,
                 channels: Sequence[int] = (128, 128, 256, 256, 512), arch: str = "cnn", act: str = "elu",
                 fw_bn: int = 0, bw_bn: int = 0, bn_affine: bool = False, bias_init: str = "zero",
                 input_size: int | None = 32) -> None:
        super().__init__(input_shape)
        check_choice("model.arch", arch, CNN_ARCHS)
        check_choice("model.bias_init", bias_init, BIAS_INITS)
        channels = _positive_ints("model.channels", channels)
        c_in, h, w = self.input_shape
        side = int(input_size) if input_size else h
        if not input_size and h != w:
            raise ConfigError(f"model.input_size=null needs square inputs, got {h}x{w}")
        if side % 2 ** len(channels):
            raise ConfigError(f"model.input_size={side} must be divisible by 2**{len(channels)} "
                              f"(one halving per conv layer; model.channels={channels})")
        self.input_hw = (side, side)
        s = side // 2 ** len(channels)
        flat = channels[-1] * s * s
        strided = arch == "cnn"
        prev = c_in
        for i, c in enumerate(channels):
            fwd_conv = nn.Conv2d(prev, c, 3, stride=2 if strided else 1, padding=1, bias=strided)
            fb_conv = nn.Conv2d(c, prev, 3, stride=1, padding=1, bias=strided)
            if strided and bias_init == "zero":  # the published code zeroes both directions' biases
                nn.init.zeros_(fwd_conv.bias)
                nn.init.zeros_(fb_conv.bias)
            last = i == len(channels) - 1
            fwd = Unit(fwd_conv, act, fw_bn, pool=not strided, bn_affine=bn_affine)
            fb = Unit(fb_conv, None if i == 0 else act, bw_bn, upsample=True,
                      in_shape=(c, s, s) if last else None, bn_affine=bn_affine)
            self.layers[f"enc{i + 1}"] = DualLayer(fwd, fb)
            prev = c
        self.layers["output"] = DualLayer(
            Unit(nn.Linear(flat, num_classes, bias=False), None, in_shape=(flat,)),
            Unit(nn.Linear(num_classes, flat, bias=False), act, bw_bn, bn_affine=bn_affine))
        self.num_classes = int(num_classes)
        self.arch = arch


class CCLConvAE(DualNet):
    """The legacy convolutional autoencoder pair (STL-10 96x96 in the published code).

    Forward: enc1..enc4 (3x3 stride-2 conv, BN, act), then dec4..dec1 (nearest x2 upsample, 3x3 conv, BN, act;
    dec1 bare). Feedback runs the reverse path (dec1.fb = stride-2 conv ... enc1.fb = upsample + bare conv),
    so both chains are autoencoders. ``init="legacy"``: orthogonal conv weights, decoder-forward and
    encoder-feedback weights x0.001, dec1.fwd and enc1.fb weights zero, forward biases zero.
    """

    task = "autoencoder"

    def __init__(self, input_shape: Sequence[int], channels: Sequence[int] = (128, 256, 1024, 2048),
                 act: str = "relu", bn: bool = True, bn_affine: bool = False, init: str = "legacy",
                 num_classes: int | None = None) -> None:
        super().__init__(input_shape)
        check_choice("model.init", init, AE_INITS)
        channels = _positive_ints("model.channels", channels)
        c_in, h, w = self.input_shape
        if h % 2 ** len(channels) or w % 2 ** len(channels):
            raise ConfigError(f"the autoencoder needs inputs divisible by 2**{len(channels)}; got {h}x{w} "
                              f"(model.channels={channels})")
        self.input_hw = (h, w)
        mode = 2 if bn else 0
        widths = [c_in, *channels]
        for i in range(len(channels)):
            first = i == 0
            fwd = Unit(nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1), act, mode,
                       bn_affine=bn_affine)
            fb = Unit(nn.Conv2d(widths[i + 1], widths[i], 3, stride=1, padding=1), None if first else act,
                      mode, upsample=True, bn_affine=bn_affine)
            self.layers[f"enc{i + 1}"] = DualLayer(fwd, fb)
        for i in reversed(range(len(channels))):
            last = i == 0
            fwd = Unit(nn.Conv2d(widths[i + 1], widths[i], 3, stride=1, padding=1), None if last else act,
                       mode, upsample=True, bn_affine=bn_affine)
            fb = Unit(nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1), act, mode,
                      bn_affine=bn_affine)
            self.layers[f"dec{i + 1}"] = DualLayer(fwd, fb)
        for layer in self.layers.values():
            nn.init.zeros_(layer.fwd.op.bias)
        if init == "legacy":
            self._legacy_init()

    @torch.no_grad()
    def _legacy_init(self) -> None:
        for layer in self.layers.values():
            for unit in (layer.fwd, layer.fb):
                wt = unit.op.weight
                if wt.shape[0] >= wt.shape[1]:  # the published rule compares out vs in channels
                    nn.init.orthogonal_(wt)
                else:
                    wt.copy_(nn.init.orthogonal_(wt.transpose(0, 1).contiguous()).transpose(0, 1))
        for name, layer in self.layers.items():
            (layer.fwd if name.startswith("dec") else layer.fb).op.weight.mul_(0.001)
        self.layers["dec1"].fwd.op.weight.zero_()
        self.layers["enc1"].fb.op.weight.zero_()
