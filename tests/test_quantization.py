"""int8 and bf16 translation agree with float32, int8 does not depend on a line's batch;
GPU paths run where a GPU exists."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from conftest import REPO, random_batch, tiny_model
from nmt.checkpoint import load_checkpoint
from nmt.config import DecodingConfig
from nmt.decode_step import ModelStep
from nmt.device import detect_capabilities, int8_matmul_is_exact, resolve_device
from nmt.errors import NmtError
from nmt.quantize import Int8Cell, Int8Linear, Int8Recurrent, quantize_int8
from nmt.search import search_batches
from nmt.textio import read_lines
from nmt.translation import Translator


# Where the int8 product saturates (no VNNI: AVX2 alone), int8 is refused; nothing to test.
needs_exact_int8 = pytest.mark.skipif(not int8_matmul_is_exact(),
                                      reason="this CPU's int8 matrix product is not exact")


def translate_dev(checkpoint, beam: int, precision: str, device: str = "cpu") -> list[str]:
    translator = Translator([checkpoint], resolve_device(device), precision,
                            DecodingConfig(beam_size=beam, batch_size=32))
    results = translator.translate(list(read_lines(REPO / "data/dev.en")))
    return [result.hypotheses[0].text for result in results]


@pytest.mark.parametrize("precision", [
    pytest.param("int8", marks=needs_exact_int8), pytest.param("bf16", marks=pytest.mark.skipif(
        not detect_capabilities().cpu_bf16, reason="oneDNN has no bf16 on this CPU"))])
@pytest.mark.parametrize("beam", [1, 3])
def test_fast_translations_agree_with_float32_on_most_sentences(sample_run, beam, precision):
    checkpoint = load_checkpoint(sample_run / "run/best.pt")
    fp32 = translate_dev(checkpoint, beam, "fp32")
    fast = translate_dev(checkpoint, beam, precision)
    assert len(fast) == len(fp32) == 200
    agreement = sum(a == b for a, b in zip(fp32, fast)) / len(fp32)
    assert agreement >= 0.8, agreement


@needs_exact_int8
def test_int8_quantizes_the_recurrent_and_linear_layers(sample_run):
    checkpoint = load_checkpoint(sample_run / "run/best.pt")
    [model] = Translator([checkpoint], resolve_device("cpu"), "int8").models
    kinds = {type(m) for m in model.modules()}
    assert {Int8Linear, Int8Cell, Int8Recurrent} <= kinds
    assert not any(issubclass(kind, (nn.LSTM, nn.LSTMCell)) for kind in kinds)
    # Only attention's energy, a single output, stays a float linear layer.
    assert [m.out_features for m in model.modules() if isinstance(m, nn.Linear)] == [1]


@needs_exact_int8
@pytest.mark.parametrize("cell,attention", [("lstm", "additive"), ("gru", "none"),
                                            ("rnn", "additive")])
@pytest.mark.parametrize("beam", [1, 3])
def test_int8_translation_does_not_depend_on_batch_composition(cell, attention, beam):
    model = quantize_int8(tiny_model(seed=11, cell=cell, attention=attention))
    sources = [random_batch(i, [n])[0][0].tolist() for i, n in enumerate([4, 9, 2, 6, 6, 3, 8])]
    step = ModelStep(model)
    together = search_batches(step, sources, beam, 1.0, 2.0, batch_size=7, n_best=beam)
    alone = search_batches(step, sources, beam, 1.0, 2.0, batch_size=1, n_best=beam)
    for mine, theirs in zip(together, alone):
        assert [h.tokens for h in mine] == [h.tokens for h in theirs]
        assert [h.score for h in mine] == pytest.approx([h.score for h in theirs], abs=1e-5)


@needs_exact_int8
def test_int8_translates_a_line_alike_alone_and_among_others(sample_run):
    checkpoint = load_checkpoint(sample_run / "run/best.pt")
    translator = Translator([checkpoint], resolve_device("cpu"), "int8")
    lines = list(read_lines(REPO / "data/dev.en"))[:40]
    together = translator.translate(lines, beam=3, batch_size=40)
    alone = [translator.translate([line], beam=3)[0] for line in lines[:10]]
    for mine, theirs in zip(together, alone):
        assert mine.hypotheses[0].text == theirs.hypotheses[0].text
        assert mine.hypotheses[0].score == pytest.approx(theirs.hypotheses[0].score, abs=1e-5)


@needs_exact_int8
@pytest.mark.parametrize("layer", [nn.LSTM, nn.GRU, nn.RNN])
def test_int8_recurrent_layers_compute_what_the_float_ones_do(layer):
    torch.manual_seed(0)
    rnn = layer(16, 12, num_layers=2, bidirectional=True, batch_first=True).eval()
    packed = pack_padded_sequence(torch.randn(4, 7, 16), torch.tensor([3, 7, 1, 5]),
                                  batch_first=True, enforce_sorted=False)
    with torch.inference_mode():
        (expected, expected_final), (got, got_final) = rnn(packed), Int8Recurrent(rnn)(packed)
    assert torch.equal(got.batch_sizes, expected.batch_sizes)
    assert got.data == pytest.approx(expected.data, abs=0.03)
    expected_final = expected_final if layer is nn.LSTM else (expected_final,)
    got_final = got_final if layer is nn.LSTM else (got_final,)
    for mine, theirs in zip(got_final, expected_final):  # h (and c): all layers and directions
        assert mine.shape == theirs.shape
        assert mine == pytest.approx(theirs, abs=0.03)


@needs_exact_int8
@pytest.mark.parametrize("cell", [nn.LSTMCell, nn.GRUCell, nn.RNNCell])
def test_int8_cells_compute_what_the_float_ones_do(cell):
    torch.manual_seed(0)
    module = cell(16, 12)
    x, h, c = torch.randn(5, 16), torch.rand(5, 12) - 0.5, torch.randn(5, 12)
    state = (h, c) if cell is nn.LSTMCell else h
    with torch.inference_mode():
        expected, got = module(x, state), Int8Cell(module)(x, state)
    for mine, theirs in zip(*(t if cell is nn.LSTMCell else (t,) for t in (got, expected))):
        assert mine == pytest.approx(theirs, abs=0.03)


@needs_exact_int8
def test_an_int8_product_row_is_exactly_the_same_alone_and_among_others():
    torch.manual_seed(0)
    weight, bias = torch.randn(30, 20), torch.randn(30)
    linear = Int8Linear(weight, bias)
    rows = torch.randn(9, 20) * torch.logspace(-2, 2, 9).unsqueeze(1)  # very different scales
    together = linear(rows)
    assert all(torch.equal(together[i], linear(rows[i:i + 1])[0]) for i in range(9))
    expected = rows @ weight.t() + bias
    error = (together - expected).abs().amax(1) / expected.abs().amax(1)
    assert (error < 0.03).all(), error


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_translation_matches_cpu(sample_run):
    checkpoint = load_checkpoint(sample_run / "run/best.pt")
    cpu = translate_dev(checkpoint, 3, "fp32")
    gpu = translate_dev(checkpoint, 3, "fp32", device="cuda")
    assert sum(a == b for a, b in zip(cpu, gpu)) / len(cpu) >= 0.95


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_int8_refuses_a_gpu(sample_run):
    checkpoint = load_checkpoint(sample_run / "run/best.pt")
    with pytest.raises(NmtError, match="CPU only"):
        Translator([checkpoint], torch.device("cuda"), "int8")
