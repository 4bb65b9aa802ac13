"""`nmt train`: the training loop, checkpoints, resuming.

Per-token cross-entropy, Adam, global-norm gradient clipping, validation every
N steps (`nmt.evaluation` measures dev perplexity and greedy BLEU; `nmt.policy`
decides the learning rate, the best checkpoint and early stopping), a
wall-clock budget. The output directory receives ``last.pt``, ``best.pt``,
``train.log``, ``metrics.jsonl``, ``config.yaml`` and, with `keep_checkpoints`,
``ckpt-STEP.pt`` files.

A run never loses work: ``last.pt`` carries the whole training state (weights,
optimiser, policy, progress, random number generators, position in the data;
see `nmt.train_state`), so `nmt train` on the same directory continues exactly
where it stopped; SIGINT/SIGTERM save it before exiting; non-finite losses skip
the update.

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
from typing import Callable, Iterator

import torch
import yaml
from tqdm import tqdm

from nmt.checkpoint import (Checkpoint, load_checkpoint, periodic_checkpoint,
                            periodic_checkpoints, save_checkpoint)
from nmt.config import Config, config_differences
from nmt.data import Batch, ParallelData, make_batch, token_batches
from nmt.device import autocast_dtype
from nmt.distributed import Distributed, setup_distributed
from nmt.errors import NmtError
from nmt.evaluation import bleu_description, dev_bleu, dev_perplexity
from nmt.model import Seq2Seq, count_parameters, token_nll
from nmt.policy import TrainingPolicy
from nmt.preprocess import load_vocabularies
from nmt.textio import atomic_write, read_lines
from nmt.train_state import Progress, TrainState

log = logging.getLogger(__name__)

# Keys that may change when a run is resumed (budgets, hardware, logging, search);
# any other difference means a different experiment.
RESUMABLE_KEYS = ("training.max_steps", "training.max_epochs", "training.max_minutes",
                  "training.device", "training.num_threads", "training.log_every",
                  "training.early_stopping_patience", "training.keep_checkpoints",
                  "decoding.")
MAX_BAD_STEPS = 5  # non-finite losses in a row before the run is stopped


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM arrived; `last.pt` holds the state at `step`."""

    def __init__(self, signum: int, step: int, checkpoint: Path):
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}; "
                         f"saved {checkpoint}; run the same command again to resume")
        self.signum = signum


@dataclass
class Validation:
    step: int
    perplexity: float
    bleu: float | None
    seconds: float


class Trainer:
    """Holds the model, optimiser and data of one run; `run()` trains it."""

    def __init__(self, config: Config, overwrite: bool = False, progress_bar: bool = False,
                 clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.progress_bar = progress_bar
        self.clock = clock  # seconds; the max_minutes budget is measured with it
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
        self.optimizer = adam(list(self.model.parameters()), train_cfg.learning_rate,
                              fused=not self.dist.enabled)
        self.policy = TrainingPolicy(train_cfg)
        self.progress = Progress()
        self.window_loss = 0.0  # this process's loss summed since the last validation
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
            for path in periodic_checkpoints(self.output_dir):
                path.unlink()
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
                     "update x %d processes); learning rate %g (%s schedule, %d warm-up steps)",
                     cfg.batch_tokens * cfg.update_every * self.dist.world_size,
                     cfg.batch_tokens, cfg.update_every, self.dist.world_size,
                     self.policy.learning_rate(p.step + 1, p.epoch),  # after any decay
                     cfg.lr_schedule, cfg.warmup_steps)
            if not (cfg.max_steps or cfg.max_epochs or cfg.max_minutes
                    or cfg.early_stopping_patience):
                log.warning("no limit: training.max_steps, max_epochs, max_minutes and "
                            "early_stopping_patience are all 0, so this run stops only on "
                            "Ctrl-C or SIGTERM (which save last.pt)")
            with self.dist.lost_contact_is_an_error():
                validation = self._run(signals)
            self._check_processes_agree()
            return validation

    def _run(self, signals: "_StopSignals") -> Validation:
        cfg, p = self.config.training, self.progress
        started, wall_before, steps_before = self.clock(), p.wall_seconds, p.step
        last_validation = None
        bar = tqdm(initial=p.step, total=cfg.max_steps or None, desc="train", unit="step",
                   dynamic_ncols=True, mininterval=1.0,
                   disable=not (self.progress_bar and self.dist.is_main))
        per_update = cfg.update_every * self.dist.world_size  # batches of the epoch per update
        batches, batches_epoch = [], 0
        stop_reason = None
        while stop_reason is None:
            p.wall_seconds = wall_before + self.clock() - started
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
            for group in self.optimizer.param_groups:
                group["lr"] = self.policy.learning_rate(p.step + 1, p.epoch)
            loss_sum = self.train_step(micro_batches, total_tokens)
            if loss_sum is None:
                self._skip_bad_step()
            else:
                p.bad_steps_in_a_row = 0
                p.step += 1
                p.train_seconds += time.perf_counter() - step_started
                p.train_tokens += int(total_tokens)
                self.window_loss += loss_sum
                p.window_tokens += int(total_tokens)
                bar.update(1)
                if p.step % cfg.log_every == 0:
                    self._log_progress(bar)
                if p.step % cfg.validate_every == 0:
                    last_validation = self._validate_and_save()
            if stop_votes and stop_reason is None:
                p.wall_seconds = wall_before + self.clock() - started
                self._save()
                raise TrainingInterrupted(signals.received or signal.SIGTERM, p.step,
                                          self.output_dir / "last.pt")
        bar.close()
        if p.step == steps_before and self.resumed:
            log.info("nothing to do: %s at step %d (raise it to train further)", stop_reason,
                     p.step)
            return Validation(p.step, self.policy.best_perplexity, None, 0.0)
        if last_validation is None or last_validation.step != p.step:
            last_validation = self._evaluate_off_grid()
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
        if cfg.max_epochs and p.epoch > cfg.max_epochs:
            return f"max_epochs ({cfg.max_epochs}) reached"
        if cfg.max_minutes:
            elapsed = self.dist.gather(p.wall_seconds)[0]
            if elapsed >= cfg.max_minutes * 60:
                return f"max_minutes ({cfg.max_minutes:g}) reached"
        return self.policy.early_stop()  # also when an early-stopped run is started again

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
        loss = self.window_loss * self.dist.world_size / max(p.window_tokens, 1)
        tokens_per_second = p.train_tokens / max(p.train_seconds, 1e-9)
        shown = {"epoch": p.epoch, "loss": f"{loss:.3f}"}
        if not self.config.training.label_smoothing:  # exp() of a smoothed loss is no perplexity
            shown["ppl"] = f"{math.exp(min(loss, 50)):.1f}"
        bar.set_postfix(**shown, tok_s=f"{tokens_per_second:.0f}")
        # Without a progress bar (e.g. output to a file) these lines show the progress.
        log.log(logging.DEBUG if self.progress_bar else logging.INFO,
                "step %d epoch %d %s %.4f tok/s %.0f lr %.2e", p.step, p.epoch,
                self._train_loss_name(), loss, tokens_per_second,
                self.optimizer.param_groups[0]["lr"])

    def _train_loss_name(self) -> str:
        smoothing = self.config.training.label_smoothing
        return f"train loss (label-smoothed {smoothing:g})" if smoothing else "train loss"

    def _validate_and_save(self) -> Validation:
        """A validation on the `validate_every` grid: the policy decides from it."""
        validation, train_loss = self._measure()
        improved = self.policy.after_validation(validation.perplexity)
        self.window_loss, self.progress.window_tokens = 0.0, 0
        # Checkpoints first: a crash between the two leaves a record missing, never one
        # that describes a state no checkpoint holds.
        self._save(best=improved, periodic=bool(self.config.training.keep_checkpoints))
        self._record(validation, train_loss, {"best": improved})
        log.info("validation at step %d: %s%s", validation.step,
                 self._describe(validation, train_loss), " (best)" if improved else "")
        return validation

    def _evaluate_off_grid(self) -> Validation:
        """The evaluation at the end of a run stopped off the grid: logged, nothing decided.

        The policy, the loss window and `best.pt` stay as they were, so a run stopped
        here and resumed is the run that would have happened without the stop.
        """
        validation, train_loss = self._measure()
        self._save()
        self._record(validation, train_loss, {"best": False, "end_of_run": True})
        log.info("evaluation at the end, step %d (off the validation grid: not used for "
                 "learning-rate decay, early stopping or best.pt): %s", validation.step,
                 self._describe(validation, train_loss))
        return validation

    def _measure(self) -> tuple[Validation, float]:
        """Rank 0 measures the dev set; every process gets the results and the train loss."""
        p = self.progress
        started = time.perf_counter()
        perplexity, bleu = math.nan, math.nan
        if self.dist.is_main:
            perplexity = dev_perplexity(self.model, self.dev_data, self.device, self.config)
            if self.config.training.validation_bleu:
                bleu = dev_bleu(self.model, self.dev_data, self.dev_refs, self.tgt_vocab,
                                self.device, self.config)
        perplexity, bleu = self.dist.gather_objects((perplexity, bleu))[0]
        (window_loss,) = self.dist.sum([self.window_loss])
        validation = Validation(p.step, perplexity, None if math.isnan(bleu) else bleu,
                                time.perf_counter() - started)
        return validation, window_loss / max(p.window_tokens, 1)

    def _describe(self, validation: Validation, train_loss: float) -> str:
        bleu = ("-" if validation.bleu is None else
                f"{validation.bleu:.2f} ({bleu_description(self.config)})")
        return (f"{self._train_loss_name()} {train_loss:.3f}, dev ppl "
                f"{validation.perplexity:.2f}, dev BLEU {bleu}")

    def _record(self, validation: Validation, train_loss: float, extra: dict) -> None:
        """Rank 0 appends the validation's record to metrics.jsonl."""
        if not self.dist.is_main:
            return
        p = self.progress
        record = {"step": p.step, "epoch": p.epoch, "train_loss": round(train_loss, 5),
                  "label_smoothing": self.config.training.label_smoothing,  # in train_loss
                  "dev_ppl": round(validation.perplexity, 3), "dev_bleu": validation.bleu,
                  "lr": self.policy.learning_rate(p.step + 1, p.epoch),
                  "train_tokens": p.train_tokens, "train_seconds": round(p.train_seconds, 1),
                  "train_tok_per_s": round(p.train_tokens / max(p.train_seconds, 1e-9), 1),
                  "validation_seconds": round(validation.seconds, 1), **extra}
        with open(self.output_dir / "metrics.jsonl", "a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")

    def _save(self, best: bool = False, periodic: bool = False) -> None:
        """Rank 0 writes the checkpoints; all processes wait for it.

        `best.pt` (if `best`) and `ckpt-STEP.pt` (if `periodic`) get what translation
        needs; `last.pt` also the training state, with every process's random number
        generators and share of the loss window, so each resumes its own.
        """
        last = self.output_dir / "last.pt"
        if not all(torch.isfinite(t).all() for t in self.model.parameters()):
            raise NmtError(f"non-finite weights at step {self.progress.step}; not saved "
                           f"({last} keeps the last good state)")
        mine = {"torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(self.device)
                if self.device.type == "cuda" else None,
                "window_loss": self.window_loss}
        per_rank = self.dist.gather_objects(mine)
        if self.dist.is_main:
            weights = Checkpoint(self.config, self.model.state_dict(), self.src_vocab,
                                 self.tgt_vocab)
            state = TrainState(self.progress, self.policy.state_dict(),
                               self.optimizer.state_dict(), self.scaler.state_dict(), per_rank)
            # best.pt first: a crash in between leaves a best.pt newer than last.pt (the
            # resumed run writes it again, identically), never a last.pt whose best
            # perplexity no best.pt on disk has.
            if best:
                save_checkpoint(self.output_dir / "best.pt", weights)
            if periodic:
                save_checkpoint(periodic_checkpoint(self.output_dir, self.progress.step), weights)
            save_checkpoint(last, dataclasses.replace(weights, training_state=state))
            if periodic:  # only now that the new one is on disk
                keep = self.config.training.keep_checkpoints
                for old in periodic_checkpoints(self.output_dir)[:-keep]:
                    old.unlink()
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
        if state is None:
            raise NmtError(f"{last}: holds no training state to resume from; "
                           "pass --overwrite to start over")
        self.model.load_state_dict(checkpoint.model_state)
        # This process's choice of Adam kernel, not the saved run's (see `adam`).
        fused = self.optimizer.param_groups[0]["fused"]
        groups = [{**group, "fused": fused} for group in state.optimizer["param_groups"]]
        self.optimizer.load_state_dict({**state.optimizer, "param_groups": groups})
        self.policy.load_state_dict(state.policy)
        if state.grad_scaler:  # empty when the scaler is off (fp32, bf16)
            self.scaler.load_state_dict(state.grad_scaler)
        self.progress = state.progress
        if len(state.per_rank) == self.dist.world_size:
            mine = state.per_rank[self.dist.rank]
            torch.set_rng_state(mine["torch_rng"])
            if mine["cuda_rng"] is not None and self.device.type == "cuda":
                torch.cuda.set_rng_state(mine["cuda_rng"], self.device)
            self.window_loss = mine["window_loss"]
        else:
            log.warning("%s was written by %d processes, this run has %d: the data is "
                        "shared out differently from here on, so the run will not repeat "
                        "exactly", last, len(state.per_rank), self.dist.world_size)
            # The window's loss is summed over processes: rank 0 carries all of it.
            self.window_loss = (sum(r["window_loss"] for r in state.per_rank)
                                if self.dist.is_main else 0.0)
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


def adam(parameters: list[torch.nn.Parameter], learning_rate: float, fused: bool
         ) -> torch.optim.Adam:
    """PyTorch's Adam; its fused kernel where asked for and available (CPU: torch >= 2.4).

    Fused, the update of the reference model took 7.8 ms instead of 29 ms (1 thread);
    its foreach variant took 40 ms. Under torchrun with gloo a fused run aborted in
    torch 2.13 ("terminate called without an active exception"), so several processes
    use the default kernel. The two agree to rounding.
    """
    if fused:
        try:
            return torch.optim.Adam(parameters, lr=learning_rate, fused=True)
        except RuntimeError:  # no fused kernel for these parameters' device here
            pass
    return torch.optim.Adam(parameters, lr=learning_rate, fused=False)


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
