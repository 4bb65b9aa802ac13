"""tools/converged_results.py: averages, ensembles and both BLEU flavours from real runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sacrebleu

from conftest import REPO, run_config
from nmt.cli import main


def test_scores_single_average_and_ensembles_of_seeded_runs(sample_run, tmp_path):
    sacremoses = pytest.importorskip("sacremoses")
    runs = []
    for seed in (1, 2):
        config = run_config(sample_run, tmp_path, f"s{seed}", max_steps=20, keep_checkpoints=2,
                            seed=seed)
        assert main(["-q", "train", str(config)]) == 0
        runs.append(tmp_path / f"s{seed}")
    tokenizer = sacremoses.MosesTokenizer(lang="de")
    references = (REPO / "data/test.de").read_text(encoding="utf-8").splitlines()
    tok_ref = tmp_path / "test.tok.de"
    tok_ref.write_text("".join(tokenizer.tokenize(line.lower(), return_str=True, escape=False)
                               + "\n" for line in references), encoding="utf-8")
    out, figures = tmp_path / "out", tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "tools/converged_results.py"), "--runs", *map(str, runs),
         "--src", str(REPO / "data/test.en"), "--ref", str(REPO / "data/test.de"),
         "--tok-ref", str(tok_ref), "--lang", "de", "--average-last", "2", "--beams", "1,2",
         "--out", str(out), "--json", str(figures)],
        capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    result = json.loads(figures.read_text())
    assert [t["steps"] for t in result["training"]] == [20, 20]
    systems = [(row["system"], row["beam"]) for row in result["rows"]]
    assert systems == [(name, beam) for name in ("single", "average of last 2", "ensemble of 2",
                                                 "ensemble of 2 averages") for beam in (1, 2)]
    assert result["rows"][5]["checkpoints"] == [str(run / "best.pt") for run in runs]
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 8  # the header, a row a system and search
    for row in result["rows"]:
        hypotheses = out / f"{row['system'].replace(' ', '_')}.beam{row['beam']}.txt"
        lines = hypotheses.read_text(encoding="utf-8").splitlines()
        assert len(lines) == len(references)
        assert row["bleu"] == pytest.approx(sacrebleu.corpus_bleu(lines, [references]).score,
                                            abs=0.01)
