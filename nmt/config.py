"""Typed configuration: parsed once from YAML into dataclasses and validated there.

Everything below the CLI takes these objects, never raw dicts. An unknown key, a
value of the wrong type or a value out of range is an `NmtError` naming the key,
e.g. ``config.yaml: model.dropout: expected a number in [0, 1), got 1.5``.
Relative paths are taken from the current working directory.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Optional

import yaml

from nmt.errors import NmtError


@dataclass
class DataConfig:
    """Where the raw corpus is and where `preprocess` writes what training reads.

    A split is a file prefix: ``train`` with ``src_lang: de`` reads ``train.de``
    or ``train.de.gz``.
    """

    src_lang: str = "de"
    tgt_lang: str = "en"
    train: str = ""
    dev: str = ""
    test: Optional[str] = None
    prepared_dir: str = "prepared"
    max_length: int = 100  # pieces per side, longer pairs are dropped from train
    max_length_ratio: float = 3.0  # longer/shorter side in pieces, train only
    lowercase: bool = False  # also makes dev BLEU compare lowercased references

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if not self.train:
            problems.append(("train", "a file prefix is required"))
        if not self.dev:
            problems.append(("dev", "a file prefix is required"))
        if self.src_lang == self.tgt_lang:
            problems.append(("tgt_lang", "must differ from src_lang"))
        if self.max_length < 1:
            problems.append(("max_length", "must be at least 1"))
        if self.max_length_ratio < 1.0:
            problems.append(("max_length_ratio", "must be at least 1.0"))
        return problems


@dataclass
class SentencePieceConfig:
    """Subword model settings (passed to SentencePiece's trainer)."""

    joint: bool = True
    vocab_size: int = 8000
    model_type: Literal["unigram", "bpe", "char", "word"] = "unigram"
    character_coverage: float = 1.0
    input_sentence_size: int = 500_000  # sentences sampled to train it; bounds memory

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if self.vocab_size < 8:
            problems.append(("vocab_size", "must be at least 8"))
        if not 0.9 <= self.character_coverage <= 1.0:
            problems.append(("character_coverage", "must be in [0.9, 1.0]"))
        if self.input_sentence_size < 1:
            problems.append(("input_sentence_size", "must be at least 1"))
        return problems


@dataclass
class ModelConfig:
    """The encoder-decoder of docs/model-spec: sizes, cell type, attention."""

    cell: Literal["lstm", "gru", "rnn"] = "lstm"
    embedding_size: int = 256
    encoder_hidden_size: int = 256  # per direction
    encoder_layers: int = 2
    bidirectional: bool = True  # extension 4; false: a forward encoder only
    decoder_hidden_size: int = 512
    decoder_layers: int = 2
    # Extension 1 off: decoder layer i reuses the recurrent weights (W_hh, b_hh) of
    # encoder layer i (its forward direction); the input weights stay separate.
    share_encoder_decoder: bool = False
    # Extension 2: what the decoder RNN reads besides its previous state.
    decoder_input_context: bool = True  # c_t
    decoder_input_prev_word: bool = True  # E y_{t-1}
    attention: Literal["additive", "none"] = "additive"
    attention_size: int = 512
    output_size: int = 512  # the tanh layer before the vocabulary projection
    dropout: float = 0.3
    reverse_source: bool = False
    tie_target_embeddings: bool = False
    init_range: float = 0.1  # uniform(-r, r) for every parameter; 0 keeps PyTorch's init

    def check(self) -> list[tuple[str, str]]:
        problems = []
        for key in ("embedding_size", "encoder_hidden_size", "encoder_layers",
                    "decoder_hidden_size", "decoder_layers", "attention_size", "output_size"):
            if getattr(self, key) < 1:
                problems.append((key, "must be at least 1"))
        if not 0.0 <= self.dropout < 1.0:
            problems.append(("dropout", "must be in [0, 1)"))
        if self.init_range < 0:
            problems.append(("init_range", "must be >= 0"))
        if self.tie_target_embeddings and self.output_size != self.embedding_size:
            problems.append(("tie_target_embeddings",
                             "needs output_size equal to embedding_size"))
        if self.share_encoder_decoder and (
                self.encoder_hidden_size != self.decoder_hidden_size
                or self.encoder_layers != self.decoder_layers):
            problems.append(("share_encoder_decoder",
                             f"needs encoder_hidden_size = decoder_hidden_size (now "
                             f"{self.encoder_hidden_size}, {self.decoder_hidden_size}) and "
                             f"encoder_layers = decoder_layers (now {self.encoder_layers}, "
                             f"{self.decoder_layers})"))
        return problems


@dataclass
class TrainingConfig:
    """Optimisation, batching, validation and stopping."""

    output_dir: str = "runs/model"
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    # auto: bf16 autocast where the hardware runs it natively (GPUs of compute capability
    # 8.0+, CPUs with AVX-512 BF16 or AMX), else fp16 with a gradient scaler on GPUs and
    # fp32 on CPUs. An explicit choice the hardware lacks is refused (nmt/device.py).
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    seed: int = 1234
    batch_tokens: int = 900  # real target tokens per batch (about 64 Multi30k sentences)
    update_every: int = 1  # batches per update (gradient accumulation), per process
    bucket_size: int = 100  # batches per length-sorted pool; larger means less padding
    learning_rate: float = 1e-3  # the rate after warm-up, before any decay
    clip_norm: float = 5.0
    label_smoothing: float = 0.0  # also in the logged train loss (dev perplexity: never)
    # Budgets: training stops at the first one reached; 0 = no limit, for each of them.
    max_steps: int = 0
    max_epochs: int = 30
    max_minutes: float = 0.0  # wall-clock budget for the training loop
    validate_every: int = 500
    validation_bleu: bool = True  # greedy-decode the dev set at each validation
    log_every: int = 50
    # How the learning rate changes (nmt/policy.py). plateau: times lr_decay_factor after
    # more than lr_patience validations without improvement; step: times lr_decay_factor
    # from decay_start_epoch on, again every decay_every_epochs (Luong et al. 2015);
    # inverse_sqrt: learning_rate * sqrt(warmup_steps / step); cosine: half a cosine from
    # learning_rate down to min_learning_rate over total_steps.
    lr_schedule: Literal["plateau", "step", "inverse_sqrt", "cosine"] = "plateau"
    warmup_steps: int = 0  # linear warm-up from 0 to learning_rate, with any schedule
    lr_decay_factor: float = 0.5  # plateau and step
    lr_patience: int = 2  # plateau: validations without improvement before decaying
    decay_start_epoch: int = 6  # step: the first epoch at a decayed rate
    decay_every_epochs: int = 1  # step
    total_steps: int = 0  # cosine: updates to decay over; 0 = max_steps
    min_learning_rate: float = 1e-5  # no schedule decays below it
    early_stopping_patience: int = 6  # validations without improvement; 0 = never stop
    # At each validation also write ckpt-STEP.pt (translation only, like best.pt) and
    # keep the newest this many of them; 0 = write none.
    keep_checkpoints: int = 0
    num_threads: int = 0  # torch CPU threads; 0 = PyTorch's default
    collective_timeout_minutes: float = 10.0  # torchrun: a rank silent this long ends the run

    def check(self) -> list[tuple[str, str]]:
        problems = []
        positive = ("batch_tokens", "update_every", "bucket_size", "validate_every",
                    "log_every", "decay_start_epoch", "decay_every_epochs")
        problems += [(k, "must be at least 1") for k in positive if getattr(self, k) < 1]
        non_negative = ("max_steps", "max_epochs", "max_minutes", "lr_patience",
                        "early_stopping_patience", "num_threads", "min_learning_rate",
                        "keep_checkpoints", "warmup_steps", "total_steps")
        problems += [(k, "must be >= 0") for k in non_negative if getattr(self, k) < 0]
        if self.collective_timeout_minutes <= 0:
            problems.append(("collective_timeout_minutes", "must be > 0"))
        if self.learning_rate <= 0:
            problems.append(("learning_rate", "must be > 0"))
        if self.clip_norm <= 0:
            problems.append(("clip_norm", "must be > 0"))
        if not 0.0 <= self.label_smoothing < 1.0:
            problems.append(("label_smoothing", "must be in [0, 1)"))
        if not 0.0 < self.lr_decay_factor <= 1.0:
            problems.append(("lr_decay_factor", "must be in (0, 1]"))
        if self.lr_schedule == "cosine" and not (self.total_steps or self.max_steps):
            problems.append(("total_steps", "lr_schedule cosine needs the number of updates "
                             "to decay over: set total_steps (or max_steps)"))
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            problems.append(("device", "must be auto, cpu, cuda or cuda:N"))
        return problems


@dataclass
class DecodingConfig:
    """Search settings, used for validation and as `translate`'s defaults."""

    beam_size: int = 5
    length_penalty: float = 1.0  # GNMT alpha; 0 = raw log-probability
    max_length_ratio: float = 2.0  # output pieces at most ratio * input pieces + 10
    batch_size: int = 64  # sentences per translation batch
    n_best: int = 1  # hypotheses output per input line, at most beam_size

    def check(self, names: Optional[Mapping[str, str]] = None) -> list[tuple[str, str]]:
        """(key, problem) pairs; `names` gives a key's name in a problem's text, for
        callers whose options are named otherwise (the CLI's flags, `translate`'s
        arguments)."""
        beam = (names or {}).get("beam_size", "beam_size")
        problems = []
        if self.beam_size < 1:
            problems.append(("beam_size", "must be at least 1"))
        if not 1 <= self.n_best <= self.beam_size:
            problems.append(("n_best", f"must be in [1, {beam} = {self.beam_size}]"))
        if self.length_penalty < 0:
            problems.append(("length_penalty", "must be >= 0"))
        if self.max_length_ratio <= 0:
            problems.append(("max_length_ratio", "must be > 0"))
        if self.batch_size < 1:
            problems.append(("batch_size", "must be at least 1"))
        return problems


@dataclass
class ServeLimits:
    """`nmt serve`'s limits on requests and its batching (flags, not part of an experiment)."""

    max_lines: int = 64  # lines per request
    max_line_chars: int = 2_000  # characters per line
    max_body_bytes: int = 1_000_000  # request body, checked before it is parsed
    max_beam: int = 16  # the largest beam a request may ask for
    batch_size: int = 64  # lines translated in one call, across requests
    max_wait_ms: float = 5.0  # a batch starts once no more lines came for this long
    queue_size: int = 1_024  # lines waiting; a request that does not fit is refused (503)

    def check(self) -> list[tuple[str, str]]:
        problems = []
        for key in ("max_lines", "max_line_chars", "max_body_bytes", "max_beam", "batch_size",
                    "queue_size"):
            if getattr(self, key) < 1:
                problems.append((key, "must be at least 1"))
        if self.max_wait_ms < 0:
            problems.append(("max_wait_ms", "must be >= 0"))
        if self.queue_size < self.max_lines:
            problems.append(("queue_size", f"must be at least max_lines = {self.max_lines}, "
                             "or a request of max_lines lines could never be accepted"))
        return problems


@dataclass
class Config:
    """A whole experiment: one YAML file with these five sections."""

    data: DataConfig = field(default_factory=DataConfig)
    sentencepiece: SentencePieceConfig = field(default_factory=SentencePieceConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for checkpoints and logs)."""
        return dataclasses.asdict(self)


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file."""
    return config_from_dict(read_yaml(path) or {}, source=str(path))


def read_yaml(path: str | Path) -> Any:
    """The plain data of a YAML file; a missing file or bad YAML is an `NmtError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NmtError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise NmtError(f"{path}: cannot read config: {error}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise NmtError(f"{path}: invalid YAML{where}: {getattr(error, 'problem', error)}") from None


def config_from_dict(raw: Any, source: str = "config") -> Config:
    """Build a `Config` from plain data, checking keys, types and ranges."""
    return _build(Config, raw, source, prefix="")


def _build(cls: type, raw: Any, source: str, prefix: str):
    if not isinstance(raw, dict):
        where = prefix.rstrip(".") or "top level"
        raise NmtError(f"{source}: {where}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in known:
            raise NmtError(f"{source}: {prefix}{key}: unknown key "
                           f"(expected one of: {', '.join(sorted(known))})")
    values = {}
    for key, value in raw.items():
        expected = hints[key]
        if dataclasses.is_dataclass(expected):
            values[key] = _build(expected, value, source, f"{prefix}{key}.")
        else:
            values[key] = _convert(value, expected, source, f"{prefix}{key}")
    obj = cls(**values)
    for key, problem in getattr(obj, "check", lambda: [])():
        raise NmtError(f"{source}: {prefix}{key}: {problem}, got {getattr(obj, key)!r}")
    return obj


def _convert(value: Any, expected: Any, source: str, key: str) -> Any:
    """Check `value` against a simple annotation; ints are accepted as floats."""
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(expected)
        if value is None and type(None) in options:
            return None
        (inner,) = [t for t in options if t is not type(None)]
        return _convert(value, inner, source, key)
    if origin is Literal:
        choices = typing.get_args(expected)
        if value not in choices:
            raise NmtError(f"{source}: {key}: expected one of {', '.join(map(str, choices))}, "
                           f"got {value!r}")
        return value
    if expected is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if expected in (str, bool) and isinstance(value, expected):
        return value
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    raise NmtError(f"{source}: {key}: expected {names.get(expected, expected)}, "
                   f"got {type(value).__name__} {value!r}")


def config_differences(old: Config, new: Config) -> list[str]:
    """Dotted keys whose values differ between two configs, e.g. ``model.dropout``."""
    old_values, new_values = old.to_dict(), new.to_dict()
    return [f"{section}.{key}" for section, values in new_values.items()
            for key, value in values.items() if old_values[section][key] != value]
