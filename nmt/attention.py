"""Bahdanau (additive) attention over the encoder's annotations."""

from __future__ import annotations

import torch
from torch import nn

from nmt.layers import Linear


class AdditiveAttention(nn.Module):
    """e_tj = v^T tanh(W q_t + b + U h_j); alpha_t = softmax over real positions; c_t = sum alpha h.

    U h_j does not depend on the decoder step, so callers compute it once per
    sentence with `project_keys` and pass it to every `forward` call.
    """

    def __init__(self, key_size: int, query_size: int, hidden_size: int):
        super().__init__()
        self.key_projection = Linear(key_size, hidden_size, bias=False)
        self.query_projection = Linear(query_size, hidden_size)
        self.energy = Linear(hidden_size, 1, bias=False)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """batch x src_len x key_size -> batch x src_len x hidden_size: 2 U h_j (see forward)."""
        return self.key_projection(keys).mul(2)

    def forward(self, query: torch.Tensor, projected_keys: torch.Tensor,
                values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Attend from `query` (batch x query_size) over the source.

        `mask` is batch x src_len, True at real tokens. Returns the context
        (batch x value_size) and the weights (batch x src_len), which are exactly
        zero at padding.
        """
        # v^T tanh(z) = 2 v^T sigmoid(2z) - sum(v), and softmax ignores the constant, so
        # the scores are 2 v^T sigmoid(2z): PyTorch's CPU tanh is several times slower
        # than its sigmoid, and this is the model's largest element-wise operation
        # (batch x src_len x hidden at every step). project_keys returns 2 U h_j.
        query = self.query_projection(query).mul(2).unsqueeze(1)  # batch x 1 x hidden
        gates = (projected_keys + query).sigmoid_()  # batch x src_len x hidden
        scores = self.energy(gates).squeeze(2).mul(2)  # batch x src_len
        scores = scores.masked_fill(~mask, float("-inf"))
        # In float32 also under bf16 autocast, so the weights users see sum to 1.
        weights = torch.softmax(scores.float(), dim=1)
        context = torch.bmm(weights.unsqueeze(1).to(values.dtype), values).squeeze(1)
        return context, weights
