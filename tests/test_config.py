"""Config parsing: defaults, type and range checks, and the shipped configs."""

from __future__ import annotations

import dataclasses

import pytest

from conftest import REPO
from nmt.config import Config, config_from_dict, load_config
from nmt.errors import NmtError


@pytest.mark.parametrize("name", ["sample.yaml", "multi30k_de-en.yaml", "multi30k_en-de.yaml"])
def test_shipped_configs_load(name):
    config = load_config(REPO / "configs" / name)
    assert config.model.cell == "lstm" and config.model.attention == "additive"


def test_reference_config_matches_the_peer_architecture():
    model = load_config(REPO / "configs/multi30k_de-en.yaml").model
    assert (model.embedding_size, model.encoder_hidden_size, model.encoder_layers,
            model.decoder_hidden_size, model.decoder_layers, model.dropout) == (
        256, 256, 2, 512, 2, 0.3)


def test_empty_sections_take_defaults():
    config = config_from_dict({"data": {"train": "t", "dev": "d"}})
    assert config.training.learning_rate == 1e-3 and config.model.encoder_layers == 2
    assert config_from_dict(config.to_dict()) == config


@pytest.mark.parametrize("raw,message", [
    ({"modle": {}}, "modle: unknown key"),
    ({"model": {"cell": "transformer"}}, "model.cell: expected one of lstm, gru, rnn"),
    ({"model": {"encoder_layers": 2.5}}, "model.encoder_layers: expected an integer"),
    ({"model": {"reverse_source": "yes"}}, "model.reverse_source: expected true or false"),
    ({"training": {"learning_rate": "fast"}}, "training.learning_rate: expected a number"),
    ({"training": {"batch_tokens": 0}}, "training.batch_tokens: must be at least 1"),
    ({"training": {"device": "tpu"}}, "training.device: must be auto"),
    ({"model": []}, "model: expected a mapping"),
    ({"data": {"src_lang": "en", "tgt_lang": "en"}}, "data.tgt_lang: must differ"),
    ({"data": {"dev": ""}}, "data.dev: a file prefix is required"),
    ({"training": {"lr_schedule": "linear"}},
     "training.lr_schedule: expected one of plateau, step, inverse_sqrt, cosine"),
    ({"training": {"lr_schedule": "cosine"}},
     "training.total_steps: lr_schedule cosine needs the number of updates to decay over"),
    ({"training": {"decay_every_epochs": 0}}, "training.decay_every_epochs: must be at least 1"),
])
def test_bad_values_name_the_key(raw, message):
    data = {"train": "t", "dev": "d", **raw.get("data", {})}
    with pytest.raises(NmtError, match=message.replace("[", r"\[").replace("(", r"\(")):
        config_from_dict({**raw, "data": data}, source="test.yaml")


def test_ints_are_accepted_where_numbers_are_expected():
    config = config_from_dict({"data": {"train": "t", "dev": "d"},
                               "training": {"learning_rate": 1, "max_minutes": 2}})
    assert isinstance(config.training.learning_rate, float)


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  cell: [lstm\n", encoding="utf-8")
    with pytest.raises(NmtError, match=r"bad.yaml: invalid YAML \(line"):
        load_config(path)


def test_default_config_passes_its_own_check():
    config = Config()
    config.data.train, config.data.dev = "train", "dev"  # the two keys without a default
    for section in dataclasses.fields(config):
        assert getattr(config, section.name).check() == [], section.name
    assert config_from_dict(config.to_dict()) == config
