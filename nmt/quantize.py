"""Int8 translation on the CPU: int8 weights, and activations quantised row by row.

Every weight matrix is stored as int8 with one scale per output unit. Each row
of an activation (one token of one sentence) is quantised with its own scale
just before its matrix product, which sums in exact int32 arithmetic
(`torch._int_mm`). So a sentence's translation does not depend on the other
sentences of its batch. (PyTorch's dynamic quantisation scales a whole batch
with one scale: there a line's output changed with its neighbours.)

`quantize_int8` swaps a model's linear layers, its recurrent cells (decoder)
and its packed recurrent layers (encoder) for the modules below. Embeddings
and single-output layers (attention's energy: one dot product per row, which
quantising would cost more than it saves) stay in float32.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

CELL_KINDS = {nn.LSTMCell: "lstm", nn.GRUCell: "gru", nn.RNNCell: "rnn",
              nn.LSTM: "lstm", nn.GRU: "gru", nn.RNN: "rnn"}


def cell_kind(module: nn.Module) -> str:
    """'lstm', 'gru' or 'rnn' for a recurrent cell or layer (or a subclass of one)."""
    return next(kind for cls, kind in CELL_KINDS.items() if isinstance(module, cls))


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 quantisation of each row of a 2-D float tensor.

    Returns the int8 rows and each row's largest magnitude (rows x 1), which
    maps to 127.
    """
    largest = x.abs().amax(dim=1, keepdim=True).clamp_(min=1e-30)
    return (x * (127 / largest)).round_().to(torch.int8), largest


class Int8Linear(nn.Module):
    """x W^T + b with W in int8 (one scale per output unit) and x quantised per row."""

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor]):
        super().__init__()
        quantized, largest = quantize_rows(weight.detach().float())
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        self.weight = quantized  # out x in; passed transposed, the faster layout for one row
        # An output's scale is its input row's largest |x| times this (both map to 127).
        self.scale = largest.view(1, -1) / (127 * 127)
        self.bias = None if bias is None else bias.detach().float().clone()

    def forward(self, x: torch.Tensor, add: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x W^T + b; with `add` (of the output's shape), x W^T + add instead."""
        # (Few operations: at decoding's sizes each one's fixed cost counts.)
        rows = x if x.dim() == 2 else x.reshape(-1, self.in_features)
        quantized, largest = quantize_rows(rows)
        # Rescaled in float32: PyTorch's mixed int32-float operations are several times slower.
        out = torch._int_mm(quantized, self.weight.t()).float().mul_(self.scale)
        add = self.bias if add is None else add
        out = out.mul_(largest) if add is None else torch.addcmul(add, out, largest)
        return out if x.dim() == 2 else out.view(*x.shape[:-1], self.out_features)


def tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh(x) = 2 sigmoid(2x) - 1: PyTorch's CPU tanh is several times slower than its
    sigmoid (absolute error ~1e-7, far below int8's)."""
    return torch.sigmoid(2 * x).mul_(2).sub_(1)


def lstm_gate_rows(tensor: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """LSTM weight or bias rows from PyTorch's gate order (i, f, g, o) to (i, f, o, 2g):
    one sigmoid then covers all four gates, as tanh(g) = 2 sigmoid(2g) - 1."""
    if tensor is None:
        return None
    i, f, g, o = tensor.chunk(4, 0)
    return torch.cat([i, f, o, 2 * g])


def gate_projection(kind: str, weight: torch.Tensor, bias: Optional[torch.Tensor]
                    ) -> Int8Linear:
    """The int8 product of a recurrent weight, LSTM gates reordered for `cell_update`."""
    if kind == "lstm":
        weight, bias = lstm_gate_rows(weight), lstm_gate_rows(bias)
    return Int8Linear(weight, bias)


def add_biases(first: Optional[torch.Tensor], second: Optional[torch.Tensor]
               ) -> Optional[torch.Tensor]:
    return None if first is None else first + second


def cell_update(kind: str, activation: Callable, gates: torch.Tensor,
                state: tuple[torch.Tensor, ...], gates_h: Optional[torch.Tensor] = None
                ) -> tuple[torch.Tensor, ...]:
    """The next state of an LSTM ((h, c)), GRU ((h,)) or plain-RNN ((h,)) cell.

    `gates` holds the input and hidden projections summed, biases included;
    a GRU gives them apart (`gates` the input's, `gates_h` the hidden state's),
    as its candidate gate needs the hidden one on its own.
    """
    if kind == "gru":
        x_r, x_z, x_n = gates.chunk(3, 1)
        h_r, h_z, h_n = gates_h.chunk(3, 1)
        z = torch.sigmoid(x_z + h_z)
        n = tanh(x_n + torch.sigmoid(x_r + h_r) * h_n)
        return (n + z * (state[0] - n),)
    if kind == "lstm":  # gates in the order i, f, o, 2g (see lstm_gate_rows)
        i, f, o, g = torch.sigmoid(gates).chunk(4, 1)
        c = torch.addcmul(f * state[1], i, g.mul_(2).sub_(1))
        return o * tanh(c), c
    return (activation(gates),)


def _activation(module: nn.Module) -> Callable:
    return torch.relu if getattr(module, "nonlinearity", "tanh") == "relu" else tanh


class Int8Cell(nn.Module):
    """An int8 nn.LSTMCell, nn.GRUCell or nn.RNNCell, called as they are."""

    def __init__(self, cell: nn.Module):
        super().__init__()
        self.kind, self.activation = cell_kind(cell), _activation(cell)
        if self.kind == "gru":
            self.input = gate_projection("gru", cell.weight_ih, cell.bias_ih)
            self.hidden = gate_projection("gru", cell.weight_hh, cell.bias_hh)
        else:  # one product over [x; h] rather than two
            self.joint = gate_projection(self.kind, torch.cat([cell.weight_ih, cell.weight_hh], 1),
                                         add_biases(cell.bias_ih, cell.bias_hh))

    def forward(self, x: torch.Tensor, state):
        if self.kind == "gru":
            return cell_update("gru", self.activation, self.input(x), (state,),
                               self.hidden(state))[0]
        states = state if self.kind == "lstm" else (state,)
        new = cell_update(self.kind, self.activation, self.joint(torch.cat([x, states[0]], 1)),
                          states)
        return new if self.kind == "lstm" else new[0]


class Int8Recurrent(nn.Module):
    """An int8 multi-layer, optionally bidirectional nn.LSTM, nn.GRU or nn.RNN.

    It takes a PackedSequence (as the encoder gives it) and returns what the
    PyTorch layer returns: the packed outputs and the final states, layer by
    layer, forward direction first, in the input's batch order.
    """

    def __init__(self, rnn: nn.RNNBase):
        super().__init__()
        self.kind, self.activation = cell_kind(rnn), _activation(rnn)
        self.hidden_size = rnn.hidden_size
        suffixes = ["_reverse"] if rnn.bidirectional else []
        self.layers = nn.ModuleList(
            nn.ModuleList(self._projections(rnn, f"l{layer}{suffix}")
                          for suffix in ["", *suffixes])
            for layer in range(rnn.num_layers))

    def _projections(self, rnn: nn.RNNBase, name: str) -> nn.ModuleList:
        """(input projection, hidden projection) of one layer and direction. Except in
        a GRU, both biases go into the input projection, computed for all tokens at once."""
        bias_ih, bias_hh = (getattr(rnn, f"bias_{part}_{name}", None) for part in ("ih", "hh"))
        if self.kind != "gru":
            bias_ih, bias_hh = add_biases(bias_ih, bias_hh), None
        weight_ih, weight_hh = getattr(rnn, f"weight_ih_{name}"), getattr(rnn, f"weight_hh_{name}")
        return nn.ModuleList([gate_projection(self.kind, weight_ih, bias_ih),
                              gate_projection(self.kind, weight_hh, bias_hh)])

    def forward(self, packed: PackedSequence, state: None = None):
        if not isinstance(packed, PackedSequence) or state is not None:
            raise TypeError("Int8Recurrent takes a PackedSequence and no initial state")
        data, batch_sizes = packed.data, packed.batch_sizes.tolist()
        finals = []
        for directions in self.layers:
            outputs = []
            for reverse, (input_projection, hidden_projection) in enumerate(directions):
                output, final = self._direction(input_projection(data), hidden_projection,
                                                batch_sizes, bool(reverse))
                outputs.append(output)
                finals.append(final)
            data = torch.cat(outputs, dim=1)
        final_states = [torch.stack([f[i] for f in finals]) for i in range(len(finals[0]))]
        if packed.unsorted_indices is not None:
            final_states = [s.index_select(1, packed.unsorted_indices) for s in final_states]
        out = PackedSequence(data, packed.batch_sizes, packed.sorted_indices,
                             packed.unsorted_indices)
        return out, (tuple(final_states) if self.kind == "lstm" else final_states[0])

    def _direction(self, gates_x: torch.Tensor, hidden_projection: Int8Linear,
                   batch_sizes: list[int], reverse: bool
                   ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Run one direction over packed rows, given every token's input projection.

        The longest sentences come first, so the rows active at time t are the
        first `batch_sizes[t]`: going forward, rows leave at the end of the state
        (their final states are kept aside); going backward, rows join there,
        starting from zeros.
        """
        starts = [0]
        for size in batch_sizes[:-1]:
            starts.append(starts[-1] + size)
        zeros = gates_x.new_zeros(batch_sizes[0], self.hidden_size)
        state = (zeros[:0],) * (2 if self.kind == "lstm" else 1)
        ended, outputs = [], []  # (ended: the rows that left, the highest rows first)
        steps = range(len(batch_sizes))
        for t in (reversed(steps) if reverse else steps):
            start, size, rows = starts[t], batch_sizes[t], len(state[0])
            if size < rows:
                ended.append(tuple(s[size:] for s in state))
                state = tuple(s[:size] for s in state)
            elif size > rows:
                state = tuple(torch.cat([s, zeros[rows:size]]) for s in state)
            gates = gates_x[start:start + size]
            if self.kind == "gru":
                state = cell_update("gru", self.activation, gates, state,
                                    hidden_projection(state[0]))
            else:
                state = cell_update(self.kind, self.activation,
                                    hidden_projection(state[0], add=gates), state)
            outputs.append(state[0])
        final = tuple(torch.cat(parts) for parts in zip(state, *reversed(ended)))
        return torch.cat(outputs[::-1] if reverse else outputs), final


def quantize_int8(model: nn.Module) -> nn.Module:
    """Swap the linear layers and recurrent cells and layers of `model` (in place) for int8 ones."""
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.Linear) and child.out_features > 1:
                setattr(module, name, Int8Linear(child.weight, child.bias))
            elif isinstance(child, (nn.LSTMCell, nn.GRUCell, nn.RNNCell)):
                setattr(module, name, Int8Cell(child))
            elif isinstance(child, (nn.LSTM, nn.GRU, nn.RNN)):
                setattr(module, name, Int8Recurrent(child))
    return model
