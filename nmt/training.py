"""`nmt train`: the training loop, validation, early stopping, checkpoints, resuming.

Per-token cross-entropy, Adam, global-norm gradient clipping, learning-rate
decay when dev perplexity stops improving, validation every N steps (perplexity
and greedy BLEU on the dev set), early stopping, a wall-clock budget. The output
directory receives ``last.pt``, ``best.pt``, ``train.log``, ``metrics.jsonl``
and ``config.yaml``.

A run never loses work: ``last.pt`` carries the whole training state (weights,
optimiser, scheduler, progress, random number generators, position in the
data), so `nmt train` on the same directory continues exactly where it stopped;
SIGINT/SIGTERM save it before exiting; non-finite losses skip the update.

Under `torchrun` each process trains on its own share of every update's batches
and DistributedDataParallel averages the gradients; only rank 0 validates and
writes files. The loss of an update is normalised by the target tokens of all
its batches on all processes, so N processes equal one process accumulating N
batches per update (`update_every`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
import yaml
from tqdm import tqdm

from nmt.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from nmt.config import Config, config_differences
from nmt.data import Batch, ParallelData, make_batch, token_batches
from nmt.device import autocast_dtype
from nmt.distributed import Distributed, setup_distributed
from nmt.errors import NmtError
from nmt.model import Seq2Seq, count_parameters, token_nll
from nmt.preprocess import load_vocabularies
from nmt.scoring import corpus_bleu
from nmt.search import translate_ids
from nmt.textio import atomic_write, read_lines

log = logging.getLogger(__name__)

# Keys that may change when a run is resumed (budgets, hardware, logging, search);
# any other difference means a different experiment.
RESUMABLE_KEYS = ("training.max_steps", "training.max_epochs", "training.max_minutes",
                  "training.device", "training.num_threads", "training.log_every",
                  "training.early_stopping_patience", "decoding.")
MAX_BAD_STEPS = 5  # non-finite losses in a row before the run is stopped


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM arrived; `last.pt` holds the state at `step`."""

    def __init__(self, signum: int, step: int, checkpoint: Path):
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}; "
                         f"saved {checkpoint}; run the same command again to resume")
        self.signum = signum


@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint so a resumed run continues exactly."""

    step: int = 0  # optimiser updates done
    epoch: int = 1
    batch_in_epoch: int = 0  # batches of `epoch` already consumed
    best_perplexity: float = math.inf
    validations_without_improvement: int = 0
    bad_steps_in_a_row: int = 0
    train_tokens: int = 0
    train_seconds: float = 0.0  # forward, backward and update only
    wall_seconds: float = 0.0  # the whole loop, validations included
    window_loss: float = 0.0  # summed since the last validation
    window_tokens: int = 0


@dataclass
class Validation:
    step: int
    perplexity: float
    bleu: float | None
    seconds: float


class Trainer:
    """Holds the model, optimiser and data of one run; `run()` trains it."""

    def __init__(self, config: Config, overwrite: bool = False, progress_bar: bool = False):
        self.config = config
        self.progress_bar = progress_bar
        train_cfg = config.training
        self.output_dir = Path(train_cfg.output_dir)
        if train_cfg.num_threads:
            torch.set_num_threads(train_cfg.num_threads)
        self.dist: Distributed = setup_distributed(train_cfg.device,
                                                   train_cfg.collective_timeout_minutes)
        self.device = self.dist.device
        self.autocast_dtype = autocast_dtype(train_cfg.precision, self.device)
        # fp16 gradients can overflow: the scaler keeps them in range (bf16 needs none).
        self.scaler = torch.amp.GradScaler(self.device.type, init_scale=2.0 ** 10,
                                           enabled=self.autocast_dtype == torch.float16)
        torch.manual_seed(train_cfg.seed)  # the same initial weights in every process

        prepared = Path(config.data.prepared_dir)
        self.src_vocab, self.tgt_vocab = load_vocabularies(prepared, config.sentencepiece.joint)
        self.train_data = ParallelData.load(prepared, "train", self.src_vocab, self.tgt_vocab)
        self.dev_data = ParallelData.load(prepared, "dev", self.src_vocab, self.tgt_vocab)
        self.dev_refs = list(read_lines(prepared / "dev.ref"))

        self.model = Seq2Seq(config.model, len(self.src_vocab), len(self.tgt_vocab)).to(
            self.device)
        torch.manual_seed(train_cfg.seed + self.dist.rank)  # but different dropout masks
        self.train_model = (torch.nn.parallel.DistributedDataParallel(self.model)
                            if self.dist.enabled else self.model)
        self.optimizer = torch.optim.Adam(self.model.parameters(), train_cfg.learning_rate, fused=True)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=train_cfg.lr_decay_factor,
            patience=train_cfg.lr_patience, min_lr=train_cfg.min_learning_rate)
        self.progress = Progress()
        self.resumed = False

        last = self.output_dir / "last.pt"
        resume = last.exists() and not overwrite
        self.dist.barrier()  # every process has decided before rank 0 touches the directory
        if resume:
            self._resume(load_checkpoint(last))
        elif self.dist.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            for name in ("last.pt", "best.pt", "metrics.jsonl"):  # --overwrite: a new run
                (self.output_dir / name).unlink(missing_ok=True)
        self.dist.barrier()

    def run(self) -> Validation:
        """Train until a stopping condition; returns the last validation.

        Raises `TrainingInterrupted` (after saving `last.pt`) on SIGINT/SIGTERM.
        """
        log_file = self.output_dir / "train.log" if self.dist.is_main else None
        with _log_to_file(log_file), _StopSignals() as signals:
            cfg, p = self.config.training, self.progress
            if self.dist.is_main:
                with atomic_write(self.output_dir / "config.yaml") as stream:
                    yaml.safe_dump(self.config.to_dict(), stream, sort_keys=False)
            log.info("%s on %s, %d threads; model: %d parameters; train %d pairs, dev %d pairs",
                     f"resuming at step {p.step} (epoch {p.epoch})" if self.resumed else
                     "training", f"{self.device} ({str(self.autocast_dtype or 'fp32')})",
                     torch.get_num_threads(),
                     count_parameters(self.model), len(self.train_data), len(self.dev_data))
            log.info("effective batch: about %d target tokens (%d per batch x %d batches per "
                     "update x %d processes); learning rate %g", cfg.batch_tokens *
                     cfg.update_every * self.dist.world_size, cfg.batch_tokens,
                     cfg.update_every, self.dist.world_size,
                     self.optimizer.param_groups[0]["lr"])  # after any decay, when resuming
            with self.dist.lost_contact_is_an_error():
                validation = self._run(signals)
            self._check_processes_agree()
            return validation

    def _run(self, signals: "_StopSignals") -> Validation:
        cfg, p = self.config.training, self.progress
        started, wall_before, steps_before = time.monotonic(), p.wall_seconds, p.step
        last_validation = None
        bar = tqdm(initial=p.step, total=cfg.max_steps or None, desc="train", unit="step",
                   dynamic_ncols=True, mininterval=1.0,
                   disable=not (self.progress_bar and self.dist.is_main))
        per_update = cfg.update_every * self.dist.world_size  # batches of the epoch per update
        batches, batches_epoch = [], 0
        stop_reason = None
        while stop_reason is None:
            p.wall_seconds = wall_before + time.monotonic() - started
            stop_reason = self._budget_spent()
            if stop_reason:
                break
            if batches_epoch != p.epoch:
                batches, batches_epoch = self.epoch_batches(p.epoch), p.epoch
            if p.batch_in_epoch + per_update > len(batches):  # the rest is too few for an update
                p.epoch, p.batch_in_epoch = p.epoch + 1, 0
                continue
            step_started = time.perf_counter()
            # This process's share: every world_size-th batch of the update's slice.
            mine = batches[p.batch_in_epoch + self.dist.rank:p.batch_in_epoch + per_update:
                           self.dist.world_size]
            p.batch_in_epoch += per_update
            micro_batches = [make_batch(self.train_data, b).to(self.device) for b in mine]
            # One collective per update: the token count and whether any process was signalled.
            total_tokens, stop_votes = self.dist.sum(
                [sum(b.num_tokens for b in micro_batches), float(bool(signals.received))])
            loss_sum = self.train_step(micro_batches, total_tokens)
            if loss_sum is None:
                self._skip_bad_step()
            else:
                p.bad_steps_in_a_row = 0
                p.step += 1
                p.train_seconds += time.perf_counter() - step_started
                p.train_tokens += int(total_tokens)
                p.window_loss += loss_sum
                p.window_tokens += int(total_tokens)
                bar.update(1)
                if p.step % cfg.log_every == 0:
                    self._log_progress(bar)
                if p.step % cfg.validate_every == 0:
                    last_validation = self._validate_and_save()
                    if (cfg.early_stopping_patience
                            and p.validations_without_improvement >= cfg.early_stopping_patience):
                        stop_reason = (f"early stopping: no dev improvement in "
                                       f"{cfg.early_stopping_patience} validations")
            if stop_votes and stop_reason is None:
                p.wall_seconds = wall_before + time.monotonic() - started
                self._save(self.output_dir / "last.pt")
                raise TrainingInterrupted(signals.received or signal.SIGTERM, p.step,
                                          self.output_dir / "last.pt")
        bar.close()
        if p.step == steps_before and self.resumed:
            log.info("nothing to do: %s at step %d (raise it to train further)", stop_reason,
                     p.step)
            return Validation(p.step, p.best_perplexity, None, 0.0)
        if last_validation is None or last_validation.step != p.step:
            last_validation = self._validate_and_save()
        log.info("stopped: %s; %d steps, %.0f s of training, %.0f target tokens/s",
                 stop_reason, p.step, p.train_seconds,
                 p.train_tokens / max(p.train_seconds, 1e-9))
        return last_validation

    def _budget_spent(self) -> str | None:
        """Why training must stop before the next step, if it must.

        The clock is rank 0's, shared with every process, so all stop at the same step.
        """
        cfg, p = self.config.training, self.progress
        if cfg.max_steps and p.step >= cfg.max_steps:
            return f"max_steps ({cfg.max_steps}) reached"
        if p.epoch > cfg.max_epochs:
            return f"max_epochs ({cfg.max_epochs}) reached"
        if cfg.max_minutes:
            elapsed = self.dist.gather(p.wall_seconds)[0]
            if elapsed >= cfg.max_minutes * 60:
                return f"max_minutes ({cfg.max_minutes:g}) reached"
        return None

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The batches of an epoch: a function of the seed and the epoch only."""
        cfg = self.config.training
        generator = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        return token_batches(self.train_data.src_lengths(), self.train_data.tgt_lengths(),
                             cfg.batch_tokens, cfg.bucket_size, generator)

    def train_step(self, micro_batches: list[Batch], total_tokens: float) -> float | None:
        """One update from this process's batches; `total_tokens` counts all processes'.

        Returns this process's summed loss, or None if the loss or the gradient was
        not finite (then no process updates: the averaged gradient is not finite).
        """
        self.train_model.train()
        self.optimizer.zero_grad(set_to_none=True)
        # DDP averages gradients over processes: dividing by total/world_size makes
        # the result the gradient of the loss per token of the whole update.
        normalizer = total_tokens / self.dist.world_size
        loss_total = 0.0
        for i, batch in enumerate(micro_batches):
            last = i == len(micro_batches) - 1
            sync = contextlib.nullcontext() if last or not self.dist.enabled \
                else self.train_model.no_sync()  # all-reduce once, after the last batch
            with sync, torch.autocast(self.device.type, dtype=self.autocast_dtype,
                                      enabled=self.autocast_dtype is not None):
                logits = self.train_model(batch.src, batch.src_lengths, batch.tgt_in)
                loss_sum = token_nll(logits, batch.tgt_out, self.config.training.label_smoothing)
            self.scaler.scale(loss_sum / normalizer).backward()
            loss_total += loss_sum.item()
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                              self.config.training.clip_norm)
        if not torch.isfinite(norm):
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.update()  # with fp16: a smaller scale for the next step
            return None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss_total

    def _skip_bad_step(self) -> None:
        p = self.progress
        p.bad_steps_in_a_row += 1
        log.warning("after step %d: non-finite loss or gradient, update skipped (%d in a row)",
                    p.step, p.bad_steps_in_a_row)
        if p.bad_steps_in_a_row >= MAX_BAD_STEPS:
            raise NmtError(f"training diverged: {MAX_BAD_STEPS} non-finite losses in a row "
                           f"after step {p.step}; {self.output_dir / 'last.pt'} holds the last "
                           "good state; lower training.learning_rate or training.clip_norm")

    def _log_progress(self, bar: tqdm) -> None:
        p = self.progress
        # window_loss is this process's share: scaling by world_size estimates the total.
        loss = p.window_loss * self.dist.world_size / max(p.window_tokens, 1)
        bar.set_postfix(epoch=p.epoch, loss=f"{loss:.3f}", ppl=f"{math.exp(min(loss, 50)):.1f}",
                        tok_s=f"{p.train_tokens / max(p.train_seconds, 1e-9):.0f}")
        # Without a progress bar (e.g. output to a file) these lines show the progress.
        log.log(logging.DEBUG if self.progress_bar else logging.INFO,
                "step %d epoch %d loss %.4f tok/s %.0f lr %.2e", p.step, p.epoch, loss,
                p.train_tokens / max(p.train_seconds, 1e-9), self.optimizer.param_groups[0]["lr"])

    @torch.inference_mode()
    def dev_perplexity(self) -> float:
        """exp(cross-entropy per target token, EOS included) on the dev set, dropout off."""
        self.model.eval()
        total, tokens = 0.0, 0
        for indices in token_batches(self.dev_data.src_lengths(), self.dev_data.tgt_lengths(),
                                     4 * self.config.training.batch_tokens, 1, None):
            batch = make_batch(self.dev_data, indices).to(self.device)
            logits = self.model(batch.src, batch.src_lengths, batch.tgt_in)
            total += token_nll(logits, batch.tgt_out).item()
            tokens += batch.num_tokens
        return math.exp(min(total / tokens, 50))

    def dev_bleu(self) -> float:
        """Greedy-decode the dev sources and score them against the raw references."""
        self.model.eval()
        sources = [self.dev_data.src(i).tolist() for i in range(len(self.dev_data))]
        decoding = self.config.decoding
        outputs = translate_ids(self.model, sources, 1, decoding.length_penalty,
                                decoding.max_length_ratio, decoding.batch_size, self.device)
        return corpus_bleu([self.tgt_vocab.decode(ids) for ids in outputs], self.dev_refs)

    def _validate_and_save(self) -> Validation:
        """Rank 0 validates; every process gets its results, so all schedules stay equal."""
        p = self.progress
        started = time.perf_counter()
        perplexity, bleu = math.nan, math.nan
        if self.dist.is_main:
            perplexity = self.dev_perplexity()
            bleu = self.dev_bleu() if self.config.training.validation_bleu else math.nan
        perplexity, bleu = self.dist.gather_objects((perplexity, bleu))[0]
        bleu = None if math.isnan(bleu) else bleu
        (window_loss,) = self.dist.sum([p.window_loss])
        validation = Validation(p.step, perplexity, bleu, time.perf_counter() - started)
        improved = perplexity < p.best_perplexity
        if improved:
            p.best_perplexity = perplexity
            p.validations_without_improvement = 0
        else:
            p.validations_without_improvement += 1
        self.scheduler.step(perplexity)
        train_loss = window_loss / max(p.window_tokens, 1)
        record = {"step": p.step, "epoch": p.epoch, "train_loss": round(train_loss, 5),
                  "dev_ppl": round(perplexity, 3), "dev_bleu": bleu,
                  "lr": self.optimizer.param_groups[0]["lr"], "train_tokens": p.train_tokens,
                  "train_seconds": round(p.train_seconds, 1),
                  "train_tok_per_s": round(p.train_tokens / max(p.train_seconds, 1e-9), 1),
                  "validation_seconds": round(validation.seconds, 1), "best": improved}
        p.window_loss, p.window_tokens = 0.0, 0
        # Checkpoints first: a crash between the two leaves a record missing, never one
        # that describes a state no checkpoint holds.
        self._save(self.output_dir / "last.pt", also=self.output_dir / "best.pt" if improved
                   else None)
        if self.dist.is_main:
            with open(self.output_dir / "metrics.jsonl", "a", encoding="utf-8") as stream:
                stream.write(json.dumps(record) + "\n")
        log.info("validation at step %d: train loss %.3f, dev ppl %.2f, dev BLEU %s%s", p.step,
                 train_loss, perplexity, "-" if bleu is None else f"{bleu:.2f}",
                 " (best)" if improved else "")
        return validation

    def _save(self, path: Path, also: Path | None = None) -> None:
        """Rank 0 writes the checkpoint (to `path`, and to `also` if given); all wait for it.

        Every process's random number generator state goes in, so each resumes its own.
        """
        if not all(torch.isfinite(t).all() for t in self.model.parameters()):
            raise NmtError(f"non-finite weights at step {self.progress.step}; not saved "
                           f"({path} keeps the last good state)")
        rng = {"torch": torch.get_rng_state(),
               "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda"
               else None}
        rng_per_rank = self.dist.gather_objects(rng)
        if self.dist.is_main:
            training_state = {
                "progress": dataclasses.asdict(self.progress),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "grad_scaler": self.scaler.state_dict(),
                "rng_per_rank": rng_per_rank,
            }
            checkpoint = Checkpoint(self.config, self.model.state_dict(), self.src_vocab,
                                    self.tgt_vocab, training_state)
            for target in (path, also):
                if target is not None:
                    save_checkpoint(target, checkpoint)
        self.dist.barrier()

    def _resume(self, checkpoint: Checkpoint) -> None:
        last = self.output_dir / "last.pt"
        differences = [key for key in config_differences(checkpoint.config, self.config)
                       if not key.startswith(RESUMABLE_KEYS)]
        if differences:
            raise NmtError(f"{self.output_dir} holds a run with a different config "
                           f"({', '.join(differences)}); to continue it, train with "
                           f"{self.output_dir / 'config.yaml'}; to start over, pass --overwrite "
                           "or choose another training.output_dir")
        for side, old, new in (("source", checkpoint.src_vocab, self.src_vocab),
                               ("target", checkpoint.tgt_vocab, self.tgt_vocab)):
            if old.model_proto != new.model_proto or old.kept != new.kept:
                raise NmtError(f"{self.config.data.prepared_dir}: the {side} vocabulary differs "
                               f"from the one {last} was trained with (was preprocess run "
                               "again?); pass --overwrite to start over")
        state = checkpoint.training_state
        if not state or "progress" not in state:
            raise NmtError(f"{last}: holds no training state to resume from; "
                           "pass --overwrite to start over")
        self.model.load_state_dict(checkpoint.model_state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("grad_scaler"):
            self.scaler.load_state_dict(state["grad_scaler"])
        self.progress = Progress(**state["progress"])
        rng_per_rank = state["rng_per_rank"]
        if len(rng_per_rank) == self.dist.world_size:
            rng = rng_per_rank[self.dist.rank]
            torch.set_rng_state(rng["torch"])
            if rng["cuda"] is not None and self.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"], self.device)
        else:
            log.warning("%s was written by %d processes, this run has %d: the data is "
                        "shared out differently from here on, so the run will not repeat "
                        "exactly", last, len(rng_per_rank), self.dist.world_size)
        self.resumed = True
        if self.dist.is_main:
            _keep_metrics_up_to(self.output_dir / "metrics.jsonl", self.progress.step)

    def _check_processes_agree(self) -> None:
        """DDP keeps every process's weights equal; a difference means a bug, so say so."""
        if not self.dist.enabled:
            return
        checksum = sum(t.double().sum().item() for t in self.model.parameters())
        checksums = self.dist.gather(checksum)
        if len(set(checksums)) != 1:
            raise NmtError(f"the training processes ended with different weights "
                           f"(checksums {checksums})")
        log.info("weights identical in all %d processes", self.dist.world_size)


def _keep_metrics_up_to(path: Path, step: int) -> None:
    """Drop records written after the checkpoint a run resumes from."""
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
    if len(kept) != len(lines):
        with atomic_write(path) as stream:
            stream.writelines(line + "\n" for line in kept)


class _StopSignals:
    """SIGINT and SIGTERM set `received`, which the loop checks after each step.

    A second signal gets the previous handler, so a stuck run can still be stopped.
    """

    def __enter__(self) -> "_StopSignals":
        self.received: int | None = None
        self._previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame) -> None:
        self.received = signum
        signal.signal(signum, self._previous[signum])
        log.warning("%s received: saving a checkpoint after this step",
                    signal.Signals(signum).name)

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def _log_to_file(path: Path | None) -> Iterator[None]:
    """Send the package's log, DEBUG lines included, to `path` (None: nowhere)."""
    if path is None:
        yield
        return
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    package_logger = logging.getLogger("nmt")
    package_logger.setLevel(logging.DEBUG)
    package_logger.addHandler(handler)
    try:
        yield
    finally:
        package_logger.removeHandler(handler)
        handler.close()
