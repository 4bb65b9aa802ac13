"""Precision follows the hardware: `auto` picks bf16 only where it is native, and
an explicit choice the hardware lacks is one clear error before anything is written."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

import nmt.device
from conftest import REPO, one_line_error, write_config
from nmt.cli import main
from nmt.device import Capabilities, CudaDevice, choose_precision
from nmt.errors import NmtError
from nmt.info import machine_report, report_text

CPU, GPU = torch.device("cpu"), torch.device("cuda", 0)
AVX2 = Capabilities(cpu_name="test CPU", cpu_capability="AVX2", cpu_bf16=False,
                    cpu_bf16_instructions="", cpu_amx=False,
                    int8_exact=True, cuda=())
AVX512 = dataclasses.replace(AVX2, cpu_capability="AVX512", cpu_bf16=True)  # bf16 emulated
AVX512_BF16 = dataclasses.replace(AVX512, cpu_bf16_instructions="AVX-512 BF16")
AMX = dataclasses.replace(AVX512, cpu_bf16_instructions="AVX-512 BF16+AMX", cpu_amx=True)
T4 = CudaDevice(0, "Tesla T4", "7.5", 14.6, bf16=False)
A100 = CudaDevice(0, "NVIDIA A100", "8.0", 79.1, bf16=True)


@pytest.mark.parametrize("purpose", ["training", "translation"])
@pytest.mark.parametrize("caps, expected", [(AVX2, "fp32"), (AVX512, "fp32"),
                                            (AVX512_BF16, "bf16"), (AMX, "bf16")])
def test_auto_on_cpu_picks_bf16_only_where_it_is_native(caps, expected, purpose):
    assert choose_precision("auto", CPU, purpose, caps)[0] == expected


@pytest.mark.parametrize("gpu, training, translation", [(A100, "bf16", "bf16"),
                                                        (T4, "fp16", "fp32")])
def test_auto_on_gpu(gpu, training, translation):
    caps = dataclasses.replace(AVX2, cuda=(gpu,))
    assert choose_precision("auto", GPU, "training", caps)[0] == training
    assert choose_precision("auto", GPU, "translation", caps)[0] == translation


@pytest.mark.parametrize("requested, device, caps, missing", [
    ("bf16", CPU, AVX2, "oneDNN has no bf16 kernels"),
    ("fp16", CPU, AMX, "needs a CUDA GPU"),
    ("int8", CPU, dataclasses.replace(AVX2, int8_exact=False), "int8 matrix product is not exact"),
    ("bf16", GPU, dataclasses.replace(AVX2, cuda=(T4,)), "Tesla T4 (compute capability 7.5)"),
    ("int8", GPU, dataclasses.replace(AVX2, cuda=(A100,)), "CPU only"),
])
def test_what_the_hardware_lacks_is_refused_in_one_line(requested, device, caps, missing):
    with pytest.raises(NmtError) as error:
        choose_precision(requested, device, "translation", caps)
    message = str(error.value)
    assert message.startswith(f"--precision {requested}") and missing in message
    assert "\n" not in message and "use " in message


def test_explicit_choices_the_hardware_has_are_kept():
    assert choose_precision("bf16", CPU, "training", AVX512)[0] == "bf16"  # slow, but it runs
    assert choose_precision("fp32", CPU, "training", AMX)[0] == "fp32"
    assert choose_precision("int8", CPU, "translation", AVX2)[0] == "int8"
    assert choose_precision("fp16", GPU, "training", dataclasses.replace(AVX2, cuda=(T4,)))[0] \
        == "fp16"


@pytest.fixture
def avx2_only(monkeypatch):
    monkeypatch.setattr(nmt.device, "detect_capabilities", lambda: AVX2)


def test_training_bf16_without_it_fails_before_touching_the_run(sample_run, tmp_path, capsys,
                                                                 avx2_only):
    run = tmp_path / "run"
    shutil.copytree(sample_run / "run", run)
    before = {path.name: path.read_bytes() for path in run.iterdir()}
    config = write_config(tmp_path / "c.yaml", tmp_path,
                          data={"prepared_dir": str(sample_run / "prepared")},
                          training={"precision": "bf16"})
    assert main(["train", str(config), "--overwrite"]) == 1  # --overwrite would delete last.pt
    assert "training.precision bf16: oneDNN has no bf16 kernels" in one_line_error(capsys)
    assert {path.name: path.read_bytes() for path in run.iterdir()} == before


def test_translate_bf16_without_it_fails_before_writing(sample_run, tmp_path, capsys, avx2_only):
    output = tmp_path / "out.de"
    assert main(["translate", "-c", str(sample_run / "run/best.pt"), "-i",
                 str(REPO / "data/dev.en"), "-o", str(output), "--precision", "bf16"]) == 1
    assert "--precision bf16: oneDNN has no bf16 kernels" in one_line_error(capsys)
    assert not output.exists()


def test_translate_logs_what_auto_chose(sample_run, tmp_path, capsys, avx2_only):
    assert main(["translate", "-c", str(sample_run / "run/best.pt"), "-i",
                 str(REPO / "data/test.en"), "-o", str(tmp_path / "out.de")]) == 0
    assert "translation precision: fp32 (auto: oneDNN has no bf16 for this CPU)" \
        in capsys.readouterr().err


def test_info_reports_the_cpu_and_every_gpu():
    report = machine_report(dataclasses.replace(AMX, cuda=(T4,)))
    assert report["cpu"]["auto_precision"] == {"training": "bf16", "translation": "bf16",
                                               "why": "this CPU has AVX-512 BF16+AMX"}
    assert report["cuda"][0]["auto_precision"]["training"] == "fp16"
    text = report_text(report)
    assert "bf16: yes, native (AVX-512 BF16+AMX)" in text and "AMX: yes" in text
    assert "CUDA 0: Tesla T4, compute capability 7.5, 14.6 GiB, bf16 no" in text
    assert "int8: exact int8 products (VNNI)" in report_text(machine_report(AVX2))


def test_info_runs_on_this_machine(capsys):
    assert main(["info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["torch"] == torch.__version__
    assert report["cuda"] == [] or torch.cuda.is_available()
    assert main(["info"]) == 0
    assert "precision auto: training" in capsys.readouterr().out


def run_limited_to_avx2(*args):
    """`python -m nmt ARGS` with oneDNN limited to AVX2, as on a CPU without bf16."""
    return subprocess.run([sys.executable, "-m", "nmt", *args], text=True, capture_output=True,
                          cwd=REPO, timeout=300, env={**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"})


def test_a_cpu_limited_to_avx2_reports_no_bf16_and_refuses_it(sample_run, tmp_path):
    info = run_limited_to_avx2("info", "--json")
    assert info.returncode == 0, info.stderr
    cpu = json.loads(info.stdout)["cpu"]
    assert not cpu["bf16"] and cpu["auto_precision"]["training"] == "fp32"
    output = tmp_path / "out.de"
    result = run_limited_to_avx2("translate", "-c", str(sample_run / "run/best.pt"), "-i",
                                 "data/dev.en", "-o", str(output), "--precision", "bf16")
    assert result.returncode == 1
    error = result.stderr.strip()
    assert "\n" not in error and "Traceback" not in error, error
    assert error.startswith("nmt translate: error: --precision bf16: oneDNN has no bf16")
    assert not output.exists()
    # oneDNN's AVX2 int8 kernels saturate: int8 is refused too, not translated into garbage
    assert not cpu["int8_exact"]
    result = run_limited_to_avx2("translate", "-c", str(sample_run / "run/best.pt"), "-i",
                                 "data/dev.en", "-o", str(output), "--precision", "int8")
    assert result.returncode == 1 and not output.exists()
    assert result.stderr.strip().startswith(
        "nmt translate: error: --precision int8: this CPU's int8 matrix product is not exact")


def test_the_command_caps_onednns_kernel_cache_unless_the_user_did(monkeypatch):
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    assert main(["info"]) == 0
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "64"
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8")
    assert main(["info"]) == 0
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "8"
