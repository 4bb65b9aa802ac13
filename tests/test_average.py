"""`nmt average`: the mean of compatible checkpoints, and the choice of a run's last ones."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

from nmt.average import average_checkpoints, last_checkpoints
from nmt.checkpoint import load_checkpoint, save_checkpoint
from nmt.cli import main
from nmt.errors import NmtError
from nmt.vocabulary import Vocabulary


def perturbed_copy(source: Path, target: Path, seed: int, scale: float = 0.01, **edits) -> Path:
    """`source` with every weight moved by seeded noise; `edits` replace Checkpoint fields."""
    checkpoint = load_checkpoint(source)
    generator = torch.Generator().manual_seed(seed)
    checkpoint.model_state = {name: tensor + scale * torch.randn(tensor.shape, generator=generator)
                              for name, tensor in checkpoint.model_state.items()}
    save_checkpoint(target, dataclasses.replace(checkpoint, **edits))
    return target


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_average_of_two_is_the_mean_of_their_weights(sample_run, tmp_path):
    best = sample_run / "run/best.pt"
    a, b = perturbed_copy(best, tmp_path / "a.pt", 1), perturbed_copy(best, tmp_path / "b.pt", 2)
    average = average_checkpoints([a, b])
    first, second = load_checkpoint(a), load_checkpoint(b)
    assert average.model_state.keys() == first.model_state.keys()
    for name, tensor in average.model_state.items():
        assert tensor.dtype == torch.float32
        expected = (first.model_state[name].double() + second.model_state[name].double()) / 2
        assert torch.equal(tensor, expected.float()), name
        assert not torch.equal(tensor, first.model_state[name])
    assert average.config == first.config and average.training_state is None


def test_average_translates_and_has_no_training_state(sample_run, tmp_path, capsys):
    run = tmp_path / "run"
    best = sample_run / "run/best.pt"
    for seed, step in enumerate((500, 1000, 1500)):
        perturbed_copy(best, run / f"ckpt-{step}.pt", seed, scale=0.001)
    output = tmp_path / "avg.pt"
    assert main(["-q", "average", "--last", "2", str(run), "-o", str(output)]) == 0
    assert load_checkpoint(output).training_state is None
    source = tmp_path / "in.en"
    source.write_text("A dog is running in the park.\nThe woman is reading a book.\n",
                      encoding="utf-8")
    assert main(["-q", "translate", "-c", str(output), "-i", str(source), "--beam", "2"]) == 0
    lines = capsys.readouterr().out.split("\n")
    assert len(lines) == 3 and lines[0] and lines[1] and lines[2] == ""


def test_last_picks_the_highest_steps(tmp_path):
    for name in ("ckpt-200.pt", "ckpt-1500.pt", "ckpt-1000.pt", "ckpt-500.pt",
                 "best.pt", "last.pt", "ckpt-best.pt", "ckpt-700.pt.tmp"):
        (tmp_path / name).write_bytes(b"")
    assert last_checkpoints(tmp_path, 2) == [tmp_path / "ckpt-1000.pt", tmp_path / "ckpt-1500.pt"]
    assert len(last_checkpoints(tmp_path, 4)) == 4
    with pytest.raises(NmtError, match="holds 4 periodic checkpoints.*training.keep_checkpoints"):
        last_checkpoints(tmp_path, 5)


def wider_decoder(checkpoint):
    return {"config": dataclasses.replace(checkpoint.config, model=dataclasses.replace(
        checkpoint.config.model, decoder_hidden_size=64))}


def fewer_target_pieces(checkpoint):
    vocab = checkpoint.tgt_vocab
    return {"tgt_vocab": Vocabulary(vocab.model_proto, vocab.kept[:-1])}


def shorter_parameter(checkpoint):
    state = dict(checkpoint.model_state)
    name = sorted(state)[-1]
    state[name] = state[name][:-1]
    return {"model_state": state}


@pytest.mark.parametrize("edit, message", [
    (wider_decoder, "b.pt: model.decoder_hidden_size differs from {a} (64 vs 48)"),
    (fewer_target_pieces, "b.pt: the target vocabulary (kept pieces) differs from {a}"),
    (shorter_parameter, "b.pt: the shape of "),
])
def test_incompatible_checkpoints_are_one_line_naming_both(sample_run, tmp_path, capsys,
                                                           edit, message):
    best = sample_run / "run/best.pt"
    a = perturbed_copy(best, tmp_path / "a.pt", 1)
    b = tmp_path / "b.pt"
    checkpoint = load_checkpoint(best)
    save_checkpoint(b, dataclasses.replace(checkpoint, **edit(checkpoint)))
    output = tmp_path / "avg.pt"
    assert main(["average", str(a), str(b), "-o", str(output)]) == 1
    assert message.format(a=a) in one_line_error(capsys)
    assert not output.exists()


def test_refuses_to_overwrite_an_input_or_count_one_twice(sample_run, tmp_path, capsys):
    a = Path(shutil.copy(sample_run / "run/best.pt", tmp_path / "a.pt"))
    b = perturbed_copy(a, tmp_path / "b.pt", 1)
    before = a.read_bytes()
    assert main(["average", str(a), str(b), "-o", str(a)]) == 1
    assert "is one of the checkpoints to average" in one_line_error(capsys)
    assert a.read_bytes() == before
    assert main(["average", str(a), str(b), str(tmp_path / "." / "a.pt"),
                 "-o", str(tmp_path / "avg.pt")]) == 1
    assert "given twice" in one_line_error(capsys)
    assert main(["average", "--last", "2", str(tmp_path), str(a), "-o", "x.pt"]) == 1
    assert "--last takes one run directory" in one_line_error(capsys)
