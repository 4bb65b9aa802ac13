"""`nmt score`: sacreBLEU options, several references and Multi30k-paper-style BLEU."""

from __future__ import annotations

import json
import sys

import pytest
from sacrebleu.metrics import BLEU

from nmt.cli import main
from nmt.errors import NmtError
from nmt.scoring import ScoreOptions, corpus_bleu, corpus_scores, moses_tokenize


def write(path, *lines: str):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def scores_of(capsys, *args: str) -> dict:
    assert main(["score", "--json", *args]) == 0
    return {s["name"]: s for s in json.loads(capsys.readouterr().out)}


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_several_references_in_either_spelling(tmp_path, capsys):
    hyp = write(tmp_path / "hyp", "a b c d e", "f g h i j")
    ref1 = write(tmp_path / "ref1", "a b c d e", "v w x y z")
    ref2 = write(tmp_path / "ref2", "v w x y z", "f g h i j")
    one = scores_of(capsys, "--hyp", hyp, "--ref", ref1, "--metrics", "bleu")["bleu"]
    both = scores_of(capsys, "--hyp", hyp, "--ref", ref1, ref2, "--metrics", "bleu")["bleu"]
    again = scores_of(capsys, "--hyp", hyp, "--ref", ref1, "--ref", ref2, "--metrics", "bleu")
    assert one["score"] < 100 and both["score"] == 100.0 and again["bleu"] == both
    assert both["signature"].startswith("nrefs:2|")


def test_a_short_reference_is_named(tmp_path, capsys):
    hyp = write(tmp_path / "hyp", "a", "b")
    ref1, ref2 = write(tmp_path / "ref1", "a", "b"), write(tmp_path / "ref2", "a")
    assert main(["score", "--hyp", hyp, "--ref", ref1, ref2]) == 1
    assert f"has 2 lines but {ref2} has 1" in one_line_error(capsys)


def test_tokenize_and_lowercase_change_score_and_signature(tmp_path, capsys):
    hyp = write(tmp_path / "hyp", "The Cat sat on the mat.")
    ref = write(tmp_path / "ref", "the cat sat on the mat.")
    default = scores_of(capsys, "--hyp", hyp, "--ref", ref)
    assert default["bleu"]["score"] < 100
    assert "case:mixed|eff:no|tok:13a" in default["bleu"]["signature"]
    lowercased = scores_of(capsys, "--hyp", hyp, "--ref", ref, "--lowercase")
    assert lowercased["bleu"]["score"] == 100.0 and lowercased["chrf"]["score"] == 100.0
    assert "case:lc" in lowercased["bleu"]["signature"]
    assert "case:lc" in lowercased["chrf"]["signature"]
    chars = scores_of(capsys, "--hyp", hyp, "--ref", ref, "--tokenize", "char", "-lc")
    assert "tok:char" in chars["bleu"]["signature"]


@pytest.mark.parametrize("args, message", [
    (["--tokenize", "moses"], "--tokenize: unknown sacreBLEU tokenizer; choose from none"),
    (["--moses-tok", "en", "--tokenize", "13a"], "--tokenize: must be none for Moses-tokenised"),
    (["--moses-tok", "xx"], "no Moses tokenizer rules for language 'xx'"),
])
def test_bad_options_are_one_line(tmp_path, capsys, args, message):
    hyp, ref = write(tmp_path / "hyp", "a"), write(tmp_path / "ref", "a")
    assert main(["score", "--hyp", hyp, "--ref", ref, *args]) == 1
    assert message in one_line_error(capsys)


def test_corpus_bleu_keeps_its_single_reference_form():
    assert corpus_bleu(["a b c d"], ["a b c d"]) == 100.0
    with pytest.raises(TypeError):
        corpus_scores(["a b c d"], ["a b c d"])


# Paper-style BLEU. The hypothesis below tokenises, lowercased, to "the cat sat on a
# mat ." (7 tokens, as the reference). Matches: 6/7 unigrams, 4/6 bigrams ("the cat",
# "cat sat", "sat on", "mat ."), 2/5 trigrams, 1/4 4-grams; brevity penalty 1.
PAPER_HYP = "The cat sat on a mat."
PAPER_REF = "the cat sat on the mat ."
PAPER_BLEU = round(100 * (6 / 7 * 4 / 6 * 2 / 5 * 1 / 4) ** (1 / 4), 2)  # 48.89


def test_moses_tok_bleu_has_the_hand_computed_score(tmp_path, capsys):
    hyp, ref = write(tmp_path / "hyp", PAPER_HYP), write(tmp_path / "ref", PAPER_REF)
    bleu = scores_of(capsys, "--hyp", hyp, "--ref", ref, "--moses-tok", "en")["bleu"]
    assert bleu["score"] == PAPER_BLEU == 48.89
    assert bleu["signature"].startswith("nrefs:1|case:lc|eff:no|tok:none|")
    assert bleu["signature"].endswith("|hyp:moses-lc-norm-tok-en")
    # Detokenised sacreBLEU of the same files is a different figure.
    assert scores_of(capsys, "--hyp", hyp, "--ref", ref)["bleu"]["score"] != PAPER_BLEU


def test_moses_tok_bleu_equals_multi_bleu_style_scoring_of_pretokenised_text():
    hypotheses = [PAPER_HYP, 'A sign says "Stop", a child laughs.', "Two red-white boats."]
    # English punctuation normalisation moves the comma inside the quotes.
    tokenised = ["the cat sat on a mat .", "a sign says &quot; stop , &quot; a child laughs .",
                 "two red-white boats ."]
    references = [PAPER_REF, "a sign says &quot; stop , &quot; the child laughs .",
                  "two red boats ."]
    assert moses_tokenize(hypotheses, "en") == tokenised
    ours = corpus_scores(hypotheses, [references], ("bleu",), ScoreOptions("none", False, "en"))
    multi_bleu = BLEU(tokenize="none", force=True).corpus_score(tokenised, [references])
    assert ours[0].score == round(multi_bleu.score, 2)


def test_moses_tokenize_matches_the_dataset_conventions():
    # German abbreviations are case-sensitive in Moses: lowercasing first splits "bart."
    assert moses_tokenize(['Der Mann rasiert seinen Bart.', "Kids' Food, saftig-grün."], "de") \
        == ["der mann rasiert seinen bart .", "kids &apos; food , saftig-grün ."]


def test_missing_sacremoses_is_one_line_naming_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "sacremoses", None)
    with pytest.raises(NmtError, match=r"pip install nmt\[moses\]"):
        moses_tokenize(["a"], "en")
    hyp, ref = write(tmp_path / "hyp", "a"), write(tmp_path / "ref", "a")
    assert main(["score", "--hyp", hyp, "--ref", ref, "--moses-tok", "en"]) == 1
    assert "pip install nmt[moses]" in one_line_error(capsys)
