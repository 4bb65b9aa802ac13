"""Corpus-level BLEU, chrF and TER with sacreBLEU, each with its signature.

By default hypotheses and references are detokenised text and sacreBLEU
tokenises them (13a, case-sensitive), the comparable way to report BLEU.
Multi30k papers report another figure: tokenised, lowercased BLEU against the
dataset's own `*.lc.norm.tok.*` references. `ScoreOptions(moses_lang=...)`
computes it: hypotheses are lowercased, punctuation-normalised and
Moses-tokenised the way those references were made, and then scored without
further tokenisation (as multi-bleu.perl does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from sacrebleu.metrics import BLEU, CHRF, TER

from nmt.errors import NmtError

METRICS = ("bleu", "chrf", "ter")


@dataclass
class Score:
    name: str
    score: float
    signature: str
    detail: str  # sacreBLEU's own one-line summary


@dataclass(frozen=True)
class ScoreOptions:
    tokenize: str = "13a"  # sacreBLEU's BLEU tokenizer
    lowercase: bool = False  # case-insensitive BLEU and chrF (sacreBLEU's TER always is)
    moses_lang: Optional[str] = None  # Moses-tokenise and lowercase hypotheses in this language

    def check(self) -> list[tuple[str, str]]:
        """(key, problem) pairs, empty when the options are usable."""
        problems = []
        if self.tokenize not in BLEU.TOKENIZERS:
            problems.append(("tokenize", "unknown sacreBLEU tokenizer; choose from "
                             + ", ".join(BLEU.TOKENIZERS)))
        elif self.moses_lang is not None and self.tokenize != "none":
            problems.append(("tokenize", "must be none for Moses-tokenised hypotheses (the "
                             "references are tokenised already)"))
        return problems


def corpus_scores(hypotheses: Sequence[str], references: Sequence[Sequence[str]],
                  metrics: Sequence[str] = METRICS,
                  options: ScoreOptions = ScoreOptions()) -> list[Score]:
    """Score hypotheses against one or more reference streams, each aligned with them."""
    if any(isinstance(stream, str) for stream in references):
        raise TypeError("references must be a list of reference streams (lists of lines)")
    for number, stream in enumerate(references, start=1):
        if len(stream) != len(hypotheses):
            raise NmtError(f"hypotheses have {len(hypotheses)} lines but reference {number} has "
                           f"{len(stream)}; they must match line for line")
    for key, problem in options.check():
        raise NmtError(f"{key}: {problem}, got {getattr(options, key)!r}")
    hypotheses = list(hypotheses)
    lowercase = options.lowercase
    note = ""
    if options.moses_lang is not None:
        hypotheses = moses_tokenize(hypotheses, options.moses_lang)
        lowercase = True  # also lowercases the references, as multi-bleu.perl -lc does
        note = f"|hyp:moses-lc-norm-tok-{options.moses_lang}"
    streams = [list(stream) for stream in references]
    scores = []
    for name in metrics:
        metric = _metric(name, options.tokenize, lowercase, force=options.moses_lang is not None)
        result = metric.corpus_score(hypotheses, streams)
        scores.append(Score(name, round(result.score, 2),
                            f"{metric.get_signature()}{note}", str(result)))
    return scores


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str],
                lowercase: bool = False) -> float:
    """Default sacreBLEU BLEU against one reference per hypothesis (both lowercased if asked)."""
    return corpus_scores(hypotheses, [references], ("bleu",),
                         ScoreOptions(lowercase=lowercase))[0].score


def moses_tokenize(lines: Sequence[str], lang: str) -> list[str]:
    """Lowercase, normalise punctuation and Moses-tokenise, as Multi30k's `lc.norm.tok` files.

    Lowercasing comes first, as for those files: Moses' list of abbreviations is
    case-sensitive (German "Bart." stays whole, "bart." is split). XML escaping
    (`&quot;`, `&apos;`) stays on and hyphens are not split, both as in those files.
    """
    try:
        from sacremoses import MosesPunctNormalizer, MosesTokenizer
        from sacremoses.corpus import NonbreakingPrefixes
    except ImportError:
        raise NmtError("Moses tokenisation needs sacremoses: pip install nmt[moses]") from None
    # sacremoses silently uses English rules for a language it has none for.
    known = sorted(set(NonbreakingPrefixes().available_langs.values()))
    if lang not in known:
        raise NmtError(f"no Moses tokenizer rules for language {lang!r}; "
                       f"known: {', '.join(known)}")
    normalizer, tokenizer = MosesPunctNormalizer(lang=lang), MosesTokenizer(lang=lang)
    return [tokenizer.tokenize(normalizer.normalize(line.lower()), return_str=True,
                               escape=True, aggressive_dash_splits=False).strip()
            for line in lines]


def _metric(name: str, tokenize: str, lowercase: bool, force: bool) -> BLEU | CHRF | TER:
    if name == "chrf":
        return CHRF(lowercase=lowercase)
    if name == "ter":
        return TER()
    if name != "bleu":
        raise ValueError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
    try:
        # force: tokenised input is intended here, so no "forgot to detokenize?" warning
        return BLEU(tokenize=tokenize, lowercase=lowercase, force=force)
    except (RuntimeError, OSError) as error:  # a tokenizer's missing extra or model download
        raise NmtError(f"sacreBLEU tokenizer {tokenize!r} is not usable here: "
                       f"{' '.join(str(error).split())}") from None
