"""Checkpoint averaging: the mean of the weights of compatible checkpoints.

Averaging the last few checkpoints of a run usually translates a little better
than any one of them. The inputs must share the model config, the vocabularies
and the parameter names and shapes; the result holds weights, config and
vocabularies but no training state, so it translates but cannot be resumed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import torch

from nmt.checkpoint import Checkpoint, load_checkpoint, periodic_checkpoints, save_checkpoint
from nmt.config import config_differences
from nmt.errors import NmtError

log = logging.getLogger("nmt")

def last_checkpoints(run_dir: str | Path, count: int) -> list[Path]:
    """The `count` periodic checkpoints (`ckpt-STEP.pt`) of a run with the highest steps."""
    run_dir = Path(run_dir)
    if count < 1:
        raise NmtError(f"--last: must be at least 1, got {count}")
    if not run_dir.is_dir():
        raise NmtError(f"{run_dir}: run directory not found")
    paths = periodic_checkpoints(run_dir)
    if len(paths) < count:
        raise NmtError(f"{run_dir}: holds {len(paths)} periodic checkpoints (ckpt-STEP.pt), "
                       f"fewer than the {count} asked for; set training.keep_checkpoints "
                       "to keep more")
    return paths[-count:]


def average_checkpoints(paths: Sequence[str | Path]) -> Checkpoint:
    """The element-wise mean of the checkpoints' weights, computed in float64.

    The config and vocabularies are the first checkpoint's. Checkpoints are
    loaded one at a time, so memory use does not grow with their number.
    """
    paths = [Path(path) for path in paths]
    if not paths:
        raise NmtError("no checkpoint to average")
    first = load_checkpoint(paths[0])
    sums = {name: tensor.to(torch.float64) for name, tensor in first.model_state.items()}
    for path in paths[1:]:
        other = load_checkpoint(path)
        _check_compatible(paths[0], first, path, other)
        for name, tensor in other.model_state.items():
            sums[name] += tensor.to(torch.float64)
    state = {name: (total / len(paths)).to(first.model_state[name].dtype)
             for name, total in sums.items()}
    return Checkpoint(first.config, state, first.src_vocab, first.tgt_vocab)


def write_average(paths: Sequence[str | Path], output: str | Path) -> None:
    """Average `paths` into `output`, which must not be one of them."""
    output = Path(output)
    seen = set()
    for path in map(Path, paths):
        if path.resolve() == output.resolve():
            raise NmtError(f"{output}: is one of the checkpoints to average; "
                           "write the average to another file")
        if path.resolve() in seen:
            raise NmtError(f"{path}: given twice; each checkpoint counts once")
        seen.add(path.resolve())
    save_checkpoint(output, average_checkpoints(paths))
    log.info("averaged %d checkpoints (%s) into %s", len(paths),
             ", ".join(Path(path).name for path in paths), output)


def _check_compatible(first_path: Path, first: Checkpoint, path: Path, other: Checkpoint) -> None:
    """Raise an `NmtError` naming both files and the first thing that differs."""
    differs = f"{path}: {{}} differs from {first_path}"
    for key in config_differences(first.config, other.config):
        if key.startswith("model."):
            name = key.removeprefix("model.")
            raise NmtError(differs.format(key) + f" ({getattr(other.config.model, name)} vs "
                           f"{getattr(first.config.model, name)})")
    for side, mine, theirs in (("source", first.src_vocab, other.src_vocab),
                               ("target", first.tgt_vocab, other.tgt_vocab)):
        if theirs.model_proto != mine.model_proto:
            raise NmtError(differs.format(f"the {side} SentencePiece model"))
        if theirs.kept != mine.kept:
            raise NmtError(differs.format(f"the {side} vocabulary (kept pieces)"))
    names, other_names = set(first.model_state), set(other.model_state)
    if names != other_names:
        only = sorted(other_names - names) or sorted(names - other_names)
        raise NmtError(differs.format("the set of parameters")
                       + f" ({only[0]} is in one file only)")
    for name, tensor in first.model_state.items():
        if other.model_state[name].shape != tensor.shape:
            raise NmtError(differs.format(f"the shape of {name}")
                           + f" ({list(other.model_state[name].shape)} vs {list(tensor.shape)})")
