#!/usr/bin/env bash
# The quickstart on the shipped sample corpus (data/, synthetic English -> German):
# preprocess, train a small model (at most two minutes on CPU), translate the
# test set with beam search and score it. Run from anywhere after `pip install -e .`.
set -euo pipefail
cd "$(dirname "$0")/.."

nmt preprocess configs/sample.yaml
nmt train configs/sample.yaml --overwrite
nmt translate --checkpoint runs/sample/best.pt -i data/test.en -o runs/sample/test.hyp.de --beam 5
echo "A few translations (source / output):"
paste -d '\n' <(head -3 data/test.en) <(head -3 runs/sample/test.hyp.de)
nmt score --ref data/test.de --hyp runs/sample/test.hyp.de
