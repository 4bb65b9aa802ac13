"""Checkpoints round-trip, refuse foreign objects, and name what is wrong."""

from __future__ import annotations

import pickle

import pytest
import torch

from nmt.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from nmt.device import resolve_device
from nmt.errors import NmtError
from nmt.config import DecodingConfig
from nmt.translation import Translator

SENTENCES = ["A dog is running in the park.", "", "Two women are eating an apple."]


def translate(checkpoint, beam: int) -> list[str]:
    translator = Translator([checkpoint], resolve_device("cpu"),
                            decoding=DecodingConfig(beam_size=beam, batch_size=8))
    return [result.hypotheses[0].text for result in translator.translate(SENTENCES)]


def test_best_checkpoint_holds_what_translation_needs_and_no_training_state(sample_run):
    run = sample_run / "run"
    payload = torch.load(run / "best.pt", weights_only=True)
    assert payload["training"] is None
    assert load_checkpoint(run / "last.pt").training_state.optimizer["state"]
    assert translate(load_checkpoint(run / "best.pt"), 1)[0]


def test_round_trip_translates_identically(sample_run, tmp_path):
    original = load_checkpoint(sample_run / "run/best.pt")
    before = translate(original, 3)
    copy = tmp_path / "copy.pt"
    save_checkpoint(copy, original)
    reloaded = load_checkpoint(copy)
    assert reloaded.config == original.config
    assert reloaded.src_vocab.kept == original.src_vocab.kept
    for name, tensor in original.model_state.items():
        assert torch.equal(tensor, reloaded.model_state[name]), name
    assert translate(reloaded, 3) == before
    assert before[1] == "" and before[0]


class RunsCode:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('x')",))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pt"
    torch.save({"format_version": FORMAT_VERSION, "config": RunsCode()}, evil)
    with pytest.raises(NmtError, match="refused to load"):
        load_checkpoint(evil)
    assert not (tmp_path / "PWNED").exists()
    with open(tmp_path / "plain_pickle.pt", "wb") as stream:
        pickle.dump(RunsCode(), stream)
    with pytest.raises(NmtError):
        load_checkpoint(tmp_path / "plain_pickle.pt")
    assert not (tmp_path / "PWNED").exists()


def test_unknown_format_version_is_a_clear_error(tmp_path):
    path = tmp_path / "future.pt"
    torch.save({"format_version": FORMAT_VERSION + 1}, path)
    with pytest.raises(NmtError, match=f"format {FORMAT_VERSION + 1} is not supported"):
        load_checkpoint(path)
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(NmtError, match="not an nmt checkpoint"):
        load_checkpoint(path)
