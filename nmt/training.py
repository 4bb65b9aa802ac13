"""`nmt train`: the training loop, validation, early stopping and checkpoints.

Per-token cross-entropy, Adam, global-norm gradient clipping, learning-rate
decay when dev perplexity stops improving, validation every N steps (perplexity
and greedy BLEU on the dev set), early stopping, a wall-clock budget. The output
directory receives ``last.pt``, ``best.pt``, ``train.log`` and ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from nmt.checkpoint import Checkpoint, save_checkpoint
from nmt.config import Config
from nmt.data import ParallelData, make_batch, token_batches
from nmt.device import resolve_device
from nmt.errors import NmtError
from nmt.model import Seq2Seq, count_parameters, token_nll
from nmt.preprocess import load_vocabularies
from nmt.scoring import corpus_bleu
from nmt.search import translate_ids
from nmt.textio import atomic_write, read_lines

log = logging.getLogger(__name__)


@dataclass
class Validation:
    step: int
    perplexity: float
    bleu: float | None
    seconds: float


class Trainer:
    """Holds the model, optimiser and data of one run; `run()` trains it."""

    def __init__(self, config: Config, overwrite: bool = False):
        self.config = config
        train_cfg = config.training
        self.output_dir = Path(train_cfg.output_dir)
        if (self.output_dir / "last.pt").exists() and not overwrite:
            raise NmtError(f"{self.output_dir}: already holds a trained model (last.pt); "
                           "choose another training.output_dir or pass --overwrite")
        self.output_dir.mkdir(parents=True, exist_ok=True)

        torch.manual_seed(train_cfg.seed)
        random.seed(train_cfg.seed)
        if train_cfg.num_threads:
            torch.set_num_threads(train_cfg.num_threads)
        self.device = resolve_device(train_cfg.device)

        prepared = Path(config.data.prepared_dir)
        self.src_vocab, self.tgt_vocab = load_vocabularies(prepared, config.sentencepiece.joint)
        self.train_data = ParallelData.load(prepared, "train", self.src_vocab, self.tgt_vocab)
        self.dev_data = ParallelData.load(prepared, "dev", self.src_vocab, self.tgt_vocab)
        self.dev_refs = list(read_lines(prepared / "dev.ref"))

        self.model = Seq2Seq(config.model, len(self.src_vocab), len(self.tgt_vocab)).to(
            self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=train_cfg.learning_rate)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=train_cfg.lr_decay_factor,
            patience=train_cfg.lr_patience, min_lr=train_cfg.min_learning_rate)
        self.step = 0
        self.best_perplexity = math.inf
        self.validations_without_improvement = 0

    def run(self) -> Validation:
        """Train until a stopping condition; returns the last validation."""
        handler = _log_to_file(self.output_dir / "train.log")
        try:
            with atomic_write(self.output_dir / "config.yaml") as stream:
                yaml.safe_dump(self.config.to_dict(), stream, sort_keys=False)
            log.info("device %s, %d threads; model: %d parameters; train %d pairs, dev %d pairs",
                     self.device, torch.get_num_threads(), count_parameters(self.model),
                     len(self.train_data), len(self.dev_data))
            return self._run()
        finally:
            logging.getLogger("nmt").removeHandler(handler)
            handler.close()

    def _run(self) -> Validation:
        cfg = self.config.training
        deadline = time.monotonic() + cfg.max_minutes * 60 if cfg.max_minutes else math.inf
        train_seconds, train_tokens = 0.0, 0
        window_loss, window_tokens, window_start = 0.0, 0, time.perf_counter()
        last_validation = None
        progress = tqdm(total=cfg.max_steps or None, desc="train", unit="step",
                        dynamic_ncols=True, mininterval=1.0)
        stop_reason = f"max_epochs ({cfg.max_epochs}) reached"
        for epoch in range(1, cfg.max_epochs + 1):
            generator = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
            batches = token_batches(self.train_data.src_lengths(), self.train_data.tgt_lengths(),
                                    cfg.batch_tokens, cfg.bucket_size, generator)
            for indices in batches:
                started = time.perf_counter()
                batch = make_batch(self.train_data, indices).to(self.device)
                loss_sum = self._train_step(batch)
                train_seconds += time.perf_counter() - started
                train_tokens += batch.num_tokens
                window_loss += loss_sum
                window_tokens += batch.num_tokens
                self.step += 1
                progress.update(1)

                if self.step % cfg.log_every == 0:
                    loss = window_loss / window_tokens
                    speed = window_tokens / (time.perf_counter() - window_start)
                    progress.set_postfix(epoch=epoch, loss=f"{loss:.3f}",
                                         ppl=f"{math.exp(min(loss, 50)):.1f}",
                                         tok_s=f"{speed:.0f}")
                    log.debug("step %d epoch %d loss %.4f ppl %.2f tok/s %.0f lr %.2e",
                              self.step, epoch, loss, math.exp(min(loss, 50)), speed,
                              self.optimizer.param_groups[0]["lr"])
                    window_loss, window_tokens, window_start = 0.0, 0, time.perf_counter()

                if self.step % cfg.validate_every == 0:
                    last_validation = self._validate_and_save(epoch, train_tokens, train_seconds)
                    window_start = time.perf_counter()  # validation is not training time
                    if self._should_stop_early():
                        stop_reason = (f"early stopping: no dev improvement in "
                                       f"{cfg.early_stopping_patience} validations")
                        break
                if cfg.max_steps and self.step >= cfg.max_steps:
                    stop_reason = f"max_steps ({cfg.max_steps}) reached"
                    break
                if time.monotonic() >= deadline:
                    stop_reason = f"max_minutes ({cfg.max_minutes:g}) reached"
                    break
            else:
                continue
            break
        progress.close()
        if last_validation is None or last_validation.step != self.step:
            last_validation = self._validate_and_save(epoch, train_tokens, train_seconds)
        log.info("stopped: %s; %d steps, %.0f s of training, %.0f target tokens/s",
                 stop_reason, self.step, train_seconds, train_tokens / max(train_seconds, 1e-9))
        return last_validation

    def _train_step(self, batch) -> float:
        self.model.train()
        logits = self.model(batch.src, batch.src_lengths, batch.tgt_in)
        loss_sum = token_nll(logits, batch.tgt_out, self.config.training.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        (loss_sum / batch.num_tokens).backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.training.clip_norm)
        self.optimizer.step()
        return loss_sum.item()

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

    def _validate_and_save(self, epoch: int, train_tokens: int,
                           train_seconds: float) -> Validation:
        started = time.perf_counter()
        perplexity = self.dev_perplexity()
        bleu = self.dev_bleu() if self.config.training.validation_bleu else None
        validation = Validation(self.step, perplexity, bleu, time.perf_counter() - started)
        improved = perplexity < self.best_perplexity
        if improved:
            self.best_perplexity = perplexity
            self.validations_without_improvement = 0
        else:
            self.validations_without_improvement += 1
        self.scheduler.step(perplexity)
        record = {"step": self.step, "epoch": epoch, "dev_ppl": round(perplexity, 3),
                  "dev_bleu": bleu, "lr": self.optimizer.param_groups[0]["lr"],
                  "train_tokens": train_tokens, "train_seconds": round(train_seconds, 1),
                  "train_tok_per_s": round(train_tokens / max(train_seconds, 1e-9), 1),
                  "validation_seconds": round(validation.seconds, 1), "best": improved}
        with open(self.output_dir / "metrics.jsonl", "a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")
        log.info("validation at step %d: dev ppl %.2f, dev BLEU %s%s", self.step, perplexity,
                 "-" if bleu is None else f"{bleu:.2f}", " (best)" if improved else "")
        checkpoint = Checkpoint(self.config, self.model.state_dict(), self.src_vocab,
                                self.tgt_vocab, {"step": self.step, "epoch": epoch})
        save_checkpoint(self.output_dir / "last.pt", checkpoint)
        if improved:
            save_checkpoint(self.output_dir / "best.pt", checkpoint)
        return validation

    def _should_stop_early(self) -> bool:
        patience = self.config.training.early_stopping_patience
        return patience > 0 and self.validations_without_improvement >= patience


def _log_to_file(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger("nmt")
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    return handler
