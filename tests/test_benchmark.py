"""The benchmark's FLOP model (its timings are never asserted: they belong in its output)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from conftest import REPO
from nmt.config import load_config


def load_benchmark():
    spec = importlib.util.spec_from_file_location("benchmark", REPO / "tools/benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_model_costs_about_what_the_peer_notes_say():
    benchmark = load_benchmark()
    model = load_config(REPO / "configs/multi30k_de-en.yaml").model
    # Multi30k de-en: 441k source and 425k + 29k (EOS) target pieces, 15.2 source pieces a
    # sentence, 3,962 target pieces. shared/bench counts about 67 MFLOP per target token
    # for the peers' 3,968-piece output layer with their 2-layer attention variant.
    flops = benchmark.flops_per_target_token(model, 441_048 / 454_197, 15.2, 3962)
    assert flops / 1e6 == pytest.approx(63, rel=0.1)



OPENNMT_LOG = """\
[2026-11-23 13:09:37,743 INFO] Start training loop and validate every 20 steps...
[2026-11-23 13:11:14,351 INFO] Step 10/   20; acc: 10.8; ppl: 800.2; bsz:  730/ 858/64;
[2026-11-23 13:11:56,127 INFO] Step 20/   20; acc: 14.6; ppl: 286.4; bsz:  762/ 874/64;
[2026-11-23 13:13:20,196 INFO] valid stats calculation
                           took: 84.06860446929932 s.
[2026-11-23 13:13:20,197 INFO] Average bsz:  746/ 866/64
[2026-11-23 13:13:20,197 INFO] Validation perplexity: 228.62
"""


def test_opennmt_training_log_gives_its_token_count_and_loop_time():
    load_benchmark()  # puts tools/ on the path
    import peer_opennmt

    figures = peer_opennmt.read_training_log(OPENNMT_LOG, steps=20)
    assert figures["target_tokens"] == 866 * 20
    # 13:09:37.743 to 13:13:20.196 less the 84.07 s of validation
    assert figures["loop_seconds"] == pytest.approx(222.453 - 84.0686, abs=1e-3)
    with pytest.raises(RuntimeError, match="lacks"):
        peer_opennmt.read_training_log(OPENNMT_LOG.replace("Average bsz", "Avg"), steps=20)


def test_cold_start_training_reads_nmt_s_own_figures(sample_run, tmp_path):
    benchmark = load_benchmark()
    config = load_config(sample_run / "config.yaml")
    figures = benchmark.cold_start_training(config, steps=3, threads=1, work=tmp_path)
    assert figures["steps"] == 3 and figures["target_tokens"] > 0
    assert figures["target_tokens_per_s"] > 0
    assert 0 < figures["launch_to_last_update_seconds"] < figures["process_seconds"]
    assert Path(figures["checkpoint"]).exists()
