"""int8 and bf16 translation agree with float32; GPU paths run where a GPU exists."""

from __future__ import annotations

import pytest
import torch

from conftest import REPO
from nmt.checkpoint import load_checkpoint
from nmt.device import detect_capabilities, resolve_device
from nmt.errors import NmtError
from nmt.textio import read_lines
from nmt.config import DecodingConfig
from nmt.translation import Translator


def translate_dev(checkpoint, beam: int, precision: str, device: str = "cpu") -> list[str]:
    translator = Translator([checkpoint], resolve_device(device), precision,
                            DecodingConfig(beam_size=beam, batch_size=32))
    results = translator.translate(list(read_lines(REPO / "data/dev.en")))
    return [result.hypotheses[0].text for result in results]


@pytest.mark.parametrize("precision", [
    "int8", pytest.param("bf16", marks=pytest.mark.skipif(
        not detect_capabilities().cpu_bf16, reason="oneDNN has no bf16 on this CPU"))])
@pytest.mark.parametrize("beam", [1, 3])
def test_fast_translations_agree_with_float32_on_most_sentences(sample_run, beam, precision):
    checkpoint = load_checkpoint(sample_run / "run/best.pt")
    fp32 = translate_dev(checkpoint, beam, "fp32")
    fast = translate_dev(checkpoint, beam, precision)
    assert len(fast) == len(fp32) == 200
    agreement = sum(a == b for a, b in zip(fp32, fast)) / len(fp32)
    assert agreement >= 0.8, agreement


def test_int8_quantizes_the_recurrent_and_linear_layers(sample_run):
    checkpoint = load_checkpoint(sample_run / "run/best.pt")
    [model] = Translator([checkpoint], resolve_device("cpu"), "int8").models
    kinds = {type(m).__module__ for m in model.modules()}
    assert "torch.ao.nn.quantized.dynamic.modules.rnn" in kinds
    assert "torch.ao.nn.quantized.dynamic.modules.linear" in kinds


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
