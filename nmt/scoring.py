"""Corpus-level BLEU, chrF and TER with sacreBLEU, each with its signature."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from sacrebleu.metrics import BLEU, CHRF, TER

from nmt.errors import NmtError


@dataclass
class Score:
    name: str
    score: float
    signature: str
    detail: str  # sacreBLEU's own one-line summary


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str],
                  metrics: Sequence[str] = ("bleu", "chrf", "ter"),
                  lowercase: bool = False) -> list[Score]:
    """Score detokenised hypotheses against one reference each (both lowercased if asked)."""
    if len(hypotheses) != len(references):
        raise NmtError(f"hypotheses have {len(hypotheses)} lines but references have "
                       f"{len(references)}; they must match line for line")
    metric_makers = {"bleu": lambda: BLEU(lowercase=lowercase),
                     "chrf": lambda: CHRF(lowercase=lowercase),
                     "ter": lambda: TER(case_sensitive=not lowercase)}
    scores = []
    for name in metrics:
        metric = metric_makers[name]()
        result = metric.corpus_score(list(hypotheses), [list(references)])
        scores.append(Score(name, round(result.score, 2), str(metric.get_signature()),
                            str(result)))
    return scores


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str],
                lowercase: bool = False) -> float:
    return corpus_scores(hypotheses, references, ("bleu",), lowercase)[0].score
