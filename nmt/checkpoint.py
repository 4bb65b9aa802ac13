"""Checkpoints: everything `translate` needs, in one file of plain data and tensors.

A checkpoint holds the format version, the whole config, the model weights
and the serialized SentencePiece model(s): all that translation needs. `last.pt`
also holds the training state (`nmt.train_state`), for resuming; `best.pt` does
not, which makes it a third of the size (Adam keeps two values per weight).
It is written atomically and loaded with ``weights_only=True``, so loading never
runs code from the file.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from nmt import __version__
from nmt.config import Config, config_from_dict
from nmt.errors import NmtError
from nmt.model import Seq2Seq
from nmt.textio import atomic_write
from nmt.train_state import TrainState, upgrade_format_1
from nmt.vocabulary import Vocabulary

FORMAT_VERSION = 2

# The one place where older checkpoint formats are brought up to date: each entry
# turns a payload of format N into one of format N + 1. New config fields need no
# entry, since they take their defaults when an older config is read.
def _upgrade_1(payload: dict) -> dict:
    training = payload.get("training")
    return {**payload, "format_version": 2,
            "training": upgrade_format_1(training) if training else None}


UPGRADES: dict[int, Callable[[dict], dict]] = {1: _upgrade_1}


@dataclass
class Checkpoint:
    config: Config
    model_state: dict[str, torch.Tensor]
    src_vocab: Vocabulary
    tgt_vocab: Vocabulary
    training_state: Optional[TrainState] = None  # last.pt only

    def build_model(self, device: torch.device | str = "cpu") -> Seq2Seq:
        """The model with its weights, in eval mode."""
        model = Seq2Seq(self.config.model, len(self.src_vocab), len(self.tgt_vocab))
        model.load_state_dict(self.model_state)
        return model.to(device).eval()


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    payload = {
        "format_version": FORMAT_VERSION,
        "nmt_version": __version__,
        "config": checkpoint.config.to_dict(),
        "model": checkpoint.model_state,
        "src_spm": checkpoint.src_vocab.model_proto,
        "src_kept": checkpoint.src_vocab.kept,
        "tgt_spm": checkpoint.tgt_vocab.model_proto,
        "tgt_kept": checkpoint.tgt_vocab.kept,
        "training": (None if checkpoint.training_state is None
                     else checkpoint.training_state.to_dict()),
    }
    try:
        with atomic_write(path, "wb") as stream:
            torch.save(payload, stream)
    except OSError as error:  # e.g. a full disk: atomic_write left the old file in place
        raise NmtError(f"{path}: cannot write checkpoint ({error.strerror or error}); "
                       "any previous checkpoint there is unchanged") from None


def periodic_checkpoint(directory: Path, step: int) -> Path:
    """Where training keeps the translation checkpoint of `step` (`keep_checkpoints`)."""
    return directory / f"ckpt-{step}.pt"


def periodic_checkpoints(directory: Path) -> list[Path]:
    """The periodic checkpoints in `directory`, oldest first."""
    steps = [path.stem[len("ckpt-"):] for path in directory.glob("ckpt-*.pt")]
    return [periodic_checkpoint(directory, step)
            for step in sorted(int(step) for step in steps if step.isdigit())]


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load and check a checkpoint; every failure is an `NmtError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise NmtError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise NmtError(f"{path}: refused to load: the file holds objects other than plain "
                       f"data and tensors ({first_line})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise NmtError(f"{path}: not a readable checkpoint (truncated or damaged?): "
                       f"{str(error).splitlines()[0] if str(error) else type(error).__name__}"
                       ) from None
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise NmtError(f"{path}: not an nmt checkpoint")
    version = payload["format_version"]
    while version in UPGRADES:
        payload = UPGRADES[version](payload)
        version = payload["format_version"]
    if version != FORMAT_VERSION:
        raise NmtError(f"{path}: checkpoint format {version} is not supported by nmt "
                       f"{__version__} (it reads format {FORMAT_VERSION}; a newer nmt "
                       "may have written it)")
    config = config_from_dict(payload["config"], source=f"{path} (stored config)")
    return Checkpoint(config, payload["model"],
                      Vocabulary(payload["src_spm"], payload["src_kept"]),
                      Vocabulary(payload["tgt_spm"], payload["tgt_kept"]),
                      TrainState.from_dict(payload["training"]) if payload["training"] else None)
