"""int8 and bf16 translation agree with float32; GPU paths run where a GPU exists."""

from __future__ import annotations

import pytest
import torch

from conftest import REPO
from nmt.checkpoint import load_checkpoint
from nmt.device import detect_capabilities, resolve_device
from nmt.errors import NmtError
from nmt.textio import read_lines
from nmt.translation import TranslateOptions, Translator


def translate_dev(checkpoint, beam: int, precision: str, device: str = "cpu") -> list[str]:
    options = TranslateOptions(beam, 1.0, 2.0, 32, resolve_device(device), precision)
    return Translator(checkpoint, options).translate(list(read_lines(REPO / "data/dev.en")))


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
    options = TranslateOptions(1, 1.0, 2.0, 8, resolve_device("cpu"), precision="int8")
    model = Translator(checkpoint, options).model
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
        Translator(checkpoint, TranslateOptions(1, 1.0, 2.0, 8, torch.device("cuda"), "int8"))
