"""The model's linear layers and recurrent cells, with float32 CPU products through oneDNN.

PyTorch multiplies float32 matrices on the CPU with MKL, and MKL runs its AVX2
code on AMD processors even where they have AVX-512. oneDNN, which PyTorch also
carries (it runs the encoder's nn.LSTM), uses the widest instructions the CPU
has. On this project's AMD EPYC machine (AVX-512) oneDNN's float32 products ran
2.0-2.6x MKL's at the model's shapes, and 1.0-1.2x with oneDNN limited to AVX2
(tools/benchmark.py prints both). The sums are float32 in both; only their
order differs.

`Linear`, `LSTMCell`, `GRUCell` and `RNNCell` are PyTorch's modules (same
parameters, same checkpoints) whose products go through `linear`: oneDNN for
float32 CPU tensors outside autocast, PyTorch's own product everywhere else
(GPU, bf16, float16, or where this PyTorch has no oneDNN). The environment
variable NMT_CPU_MATMUL=pytorch keeps PyTorch's product everywhere.
"""

from __future__ import annotations

import os
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from nmt.errors import NmtError


def _find_onednn_product() -> Optional[Callable]:
    if not torch.backends.mkldnn.is_available():
        return None
    try:  # the fused linear that torch.compile uses on CPU; it takes ordinary tensors
        return torch.ops.mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):
        return None


_ONEDNN_PRODUCT = _find_onednn_product()
CPU_MATMUL_CHOICES = ("onednn", "pytorch")


def onednn_available() -> bool:
    return _ONEDNN_PRODUCT is not None


def requested_cpu_matmul() -> str:
    """NMT_CPU_MATMUL, checked: 'onednn' (the default) or 'pytorch'."""
    value = os.environ.get("NMT_CPU_MATMUL", "onednn")
    if value not in CPU_MATMUL_CHOICES:
        raise NmtError(f"NMT_CPU_MATMUL={value!r}: expected one of {', '.join(CPU_MATMUL_CHOICES)}")
    return value


_use_onednn = onednn_available() and os.environ.get("NMT_CPU_MATMUL") != "pytorch"


def use_onednn(enabled: bool) -> None:
    """Route float32 CPU products through oneDNN (the default where available) or not."""
    global _use_onednn
    _use_onednn = enabled and onednn_available()


def onednn_in_use() -> bool:
    return _use_onednn


def _autocast_on() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # PyTorch before 2.4
        return torch.is_autocast_cpu_enabled()


def onednn_product(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]
                   ) -> torch.Tensor:
    """x W^T + b by oneDNN (x and W may be transposed views)."""
    return _ONEDNN_PRODUCT(x, weight, bias, "none", [], "")


class _OneDNNLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        # Views with gaps between rows (a state split off a wider matrix, a column of
        # grad) took oneDNN 1.2-3.5x as long as a copy does, in backward up to 1,000x.
        x = x.contiguous()
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return onednn_product(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        grad_rows = grad.reshape(-1, grad.size(-1))
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = onednn_product(grad, weight.t(), None)
        if ctx.needs_input_grad[1]:  # one product over all rows: sum_r grad_r^T x_r
            grad_weight = onednn_product(grad_rows.t(), x.reshape(-1, x.size(-1)).t(), None)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_rows.sum(0)
        return grad_x, grad_weight, grad_bias


def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None
           ) -> torch.Tensor:
    """F.linear, through oneDNN for float32 CPU tensors (see the module's docstring)."""
    if (_use_onednn and x.dtype == torch.float32 and weight.dtype == torch.float32
            and x.device.type == "cpu" and x.numel() > 0  # oneDNN has no empty products
            and not _autocast_on()):
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad
                                           for t in (x, weight, bias)):
            return _OneDNNLinear.apply(x, weight, bias)
        return onednn_product(x.contiguous(), weight, bias)  # (see _OneDNNLinear.forward)
    return F.linear(x, weight, bias)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """F.dropout; on the CPU with the mask drawn by torch.rand_like, which took a third of
    the time of the Bernoulli draw F.dropout makes there (81 vs 245 us on 64 x 512)."""
    if not training or p == 0 or x.device.type != "cpu" or not x.is_floating_point():
        return F.dropout(x, p, training)
    if p == 1:
        return x * 0
    keep = torch.rand_like(x).ge_(p).to(x.dtype).mul_(1 / (1 - p))
    return x * keep


class Dropout(nn.Dropout):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


class Linear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


# The cells below compute what PyTorch's do (its CPU cells are these same
# operations around two F.linear calls), with the products through `linear`.

class LSTMCell(nn.LSTMCell):
    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        gates = linear(x, self.weight_ih, self.bias_ih) + linear(h, self.weight_hh, self.bias_hh)
        i, f, g, o = gates.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class GRUCell(nn.GRUCell):
    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        x_r, x_z, x_n = linear(x, self.weight_ih, self.bias_ih).chunk(3, 1)
        h_r, h_z, h_n = linear(h, self.weight_hh, self.bias_hh).chunk(3, 1)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + torch.sigmoid(x_r + h_r) * h_n)
        return n + z * (h - n)


class RNNCell(nn.RNNCell):
    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        pre = linear(x, self.weight_ih, self.bias_ih) + linear(h, self.weight_hh, self.bias_hh)
        return torch.relu(pre) if self.nonlinearity == "relu" else torch.tanh(pre)
