"""The layers whose float32 CPU products go through oneDNN compute what PyTorch's do."""

from __future__ import annotations

import contextlib
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import one_line_error, random_batch, tiny_model
from nmt import layers
from nmt.cli import main
from nmt.model import token_nll
from nmt.decode_step import ModelStep
from nmt.search import beam_search, greedy_search

needs_onednn = pytest.mark.skipif(not layers.onednn_available(),
                                  reason="this PyTorch has no oneDNN")


@contextlib.contextmanager
def onednn(enabled: bool):
    before = layers.onednn_in_use()
    layers.use_onednn(enabled)
    try:
        yield
    finally:
        layers.use_onednn(before)


def outputs_and_grads(module: nn.Module, inputs: list[torch.Tensor], enabled: bool):
    """The module's outputs and the gradients of a fixed function of them, with oneDNN or not."""
    inputs = [x.detach().clone().requires_grad_() for x in inputs]
    module.zero_grad()
    with onednn(enabled):
        out = module(inputs[0], *inputs[1:2]) if len(inputs) < 3 else module(inputs[0], tuple(inputs[1:]))
    outs = out if isinstance(out, tuple) else (out,)
    weights = [torch.linspace(-1, 1, o.numel()).view_as(o) for o in outs]
    sum(((o * w).sum() for o, w in zip(outs, weights))).backward()
    grads = [x.grad for x in inputs] + [p.grad.clone() for p in module.parameters()]
    return [o.detach() for o in outs], grads


def assert_close_lists(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


def column_slice(rows: int, width: int) -> torch.Tensor:
    """A rows x width view into a wider matrix (as the bridge's split gives the first state)."""
    return torch.randn(rows, 3 * width)[:, width:2 * width]


@needs_onednn
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 7), (3, 4, 7)])
def test_linear_matches_pytorch_outputs_and_gradients(bias, shape):
    torch.manual_seed(0)
    module = layers.Linear(7, 6, bias=bias)
    x = torch.randn(*shape)
    assert_close_lists(*[outputs_and_grads(module, [x], e)[0] for e in (True, False)])
    assert_close_lists(*[outputs_and_grads(module, [x], e)[1] for e in (True, False)])


@needs_onednn
def test_linear_of_a_column_slice_has_the_right_weight_gradient():
    torch.manual_seed(0)
    module = layers.Linear(8, 6)
    x = column_slice(5, 8)
    with_onednn, without = (outputs_and_grads(module, [x], e) for e in (True, False))
    assert_close_lists(with_onednn[1], without[1])


@needs_onednn
@pytest.mark.parametrize("make", [
    lambda: layers.LSTMCell(6, 8), lambda: layers.LSTMCell(6, 8, bias=False),
    lambda: layers.GRUCell(6, 8), lambda: layers.RNNCell(6, 8),
    lambda: layers.RNNCell(6, 8, nonlinearity="relu")])
def test_cells_match_pytorchs_own_cells(make):
    torch.manual_seed(0)
    cell = make()
    lstm = isinstance(cell, nn.LSTMCell)
    inputs = [torch.randn(5, 6), column_slice(5, 8)] + ([torch.randn(5, 8)] if lstm else [])
    ours = outputs_and_grads(cell, inputs, True)
    # PyTorch's own cell (its C++ implementation) with the same parameters
    reference = {nn.LSTMCell: nn.LSTMCell, nn.GRUCell: nn.GRUCell, nn.RNNCell: nn.RNNCell}
    base = next(c for c in reference if isinstance(cell, c))
    kwargs = {"nonlinearity": cell.nonlinearity} if base is nn.RNNCell else {}
    theirs_cell = base(6, 8, bias=cell.bias, **kwargs)
    theirs_cell.load_state_dict(cell.state_dict())
    theirs = outputs_and_grads(theirs_cell, inputs, False)
    assert_close_lists(ours[0], theirs[0])
    assert_close_lists(ours[1], theirs[1])


@needs_onednn
def test_without_onednn_the_product_is_pytorchs_bit_for_bit():
    torch.manual_seed(0)
    x, w, b = torch.randn(4, 7), torch.randn(5, 7), torch.randn(5)
    with onednn(False):
        assert torch.equal(layers.linear(x, w, b), F.linear(x, w, b))


def test_empty_inputs_give_what_pytorch_gives():
    w, b = torch.randn(5, 0), torch.randn(5)
    assert torch.equal(layers.linear(torch.randn(3, 0), w, b), F.linear(torch.randn(3, 0), w, b))
    assert layers.linear(torch.randn(0, 7), torch.randn(5, 7)).shape == (0, 5)


def test_other_precisions_keep_pytorchs_product():
    torch.manual_seed(0)
    x, w = torch.randn(4, 7), torch.randn(5, 7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layers.linear(x, w).dtype == F.linear(x, w).dtype == torch.bfloat16
    assert layers.linear(x.double(), w.double()).dtype == torch.float64


@needs_onednn
def test_model_loss_and_gradients_agree_with_and_without_onednn():
    model = tiny_model(dropout=0.0).train()
    src, src_lengths = random_batch(1, [7, 5, 3])
    tgt_in, _ = random_batch(2, [6, 6, 6], vocab=40)
    tgt_out, _ = random_batch(3, [6, 4, 2], vocab=40)
    results = []
    for enabled in (True, False):
        model.zero_grad()
        with onednn(enabled):
            loss = token_nll(model(src, src_lengths, tgt_in), tgt_out)
        loss.backward()
        results.append([loss.detach()] + [p.grad.clone() for p in model.parameters()])
    assert_close_lists(*results)


@needs_onednn
def test_translations_are_the_same_with_and_without_onednn():
    model = tiny_model(seed=3)
    src, src_lengths = random_batch(4, [9, 7, 7, 4, 2, 8])
    found = []
    for enabled in (True, False):
        with onednn(enabled), torch.no_grad():
            step = ModelStep(model)
            greedy = greedy_search(step, src, src_lengths)
            beams = beam_search(step, src, src_lengths, beam_size=3, n_best=3)
            found.append(([h.tokens for h in greedy],
                          [[h.tokens for h in n_best] for n_best in beams]))
    assert found[0] == found[1]


def test_the_environment_chooses_the_product_and_info_says_which(monkeypatch, capsys):
    before = layers.onednn_in_use()
    try:
        monkeypatch.setenv("NMT_CPU_MATMUL", "pytorch")
        assert main(["info"]) == 0
        assert not layers.onednn_in_use()
        assert "fp32 products: PyTorch's own (NMT_CPU_MATMUL=pytorch)" in capsys.readouterr().out
        monkeypatch.setenv("NMT_CPU_MATMUL", "onednn")
        assert main(["info", "--json"]) == 0
        expected = "onednn" if layers.onednn_available() else "pytorch"
        assert json.loads(capsys.readouterr().out)["cpu"]["fp32_products"] == expected
        monkeypatch.setenv("NMT_CPU_MATMUL", "mkl")
        assert main(["info"]) == 1
        assert one_line_error(capsys) == (
            "nmt info: error: NMT_CPU_MATMUL='mkl': expected one of onednn, pytorch")
    finally:
        layers.use_onednn(before)


def test_dropout_keeps_each_value_with_probability_1_minus_p_scaled_up():
    torch.manual_seed(0)
    x = torch.rand(200, 500) + 0.5
    module = layers.Dropout(0.3)
    x.requires_grad_()
    out = module(x)
    kept = out != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.01
    torch.testing.assert_close(out[kept], (x / 0.7)[kept])
    out.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.7)  # the gradient passes where kept
    torch.manual_seed(1)
    first = module(x)
    torch.manual_seed(1)
    assert torch.equal(first, module(x))  # reproducible from the seed
    assert torch.equal(module.eval()(x), x)


def test_dropout_of_zero_and_one():
    x = torch.rand(3, 4)
    assert torch.equal(layers.dropout(x, 0.0, True), x)
    assert torch.equal(layers.dropout(x, 1.0, True), torch.zeros(3, 4))
