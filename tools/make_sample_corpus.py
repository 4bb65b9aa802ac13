#!/usr/bin/env python3
"""Generate the project's synthetic English-German sample corpus.

The corpus lets the quickstart and the tests train a small model offline.  It
is produced from a small hand-written template grammar of image-caption-like
sentences, for example::

    A young man is riding a red bicycle in the park.
    Ein junger Mann fährt ein rotes Fahrrad im Park.

    Two dogs are playing on the beach.
    Zwei Hunde spielen am Strand.

Every German form (article, adjective ending, noun case form, verb form, place
phrase) is written out explicitly in the tables below; code only looks up
which article and adjective ending a determiner, case and gender take (the
``GERMAN_DETERMINERS`` table).  The one spelling rule is English "a" -> "an"
before a vowel.  Semantic constraints (who can do what, where) keep the
sentences plausible.

Output (one sentence per line, UTF-8, lines aligned between languages)::

    OUT/train.en  OUT/train.de   3000 pairs
    OUT/dev.en    OUT/dev.de      200 pairs
    OUT/test.en   OUT/test.de     200 pairs

No sentence (English or German) occurs twice anywhere in the corpus, so dev
and test never overlap train, and every word in dev and test also occurs in
train.  The output depends only on ``--seed``.

Usage::

    python tools/make_sample_corpus.py                  # writes to data/
    python tools/make_sample_corpus.py --out /tmp/corpus --seed 7

Standard library only.
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "data"
DEFAULT_SEED = 1234
SPLITS = (("train", 3000), ("dev", 200), ("test", 200))

# --------------------------------------------------------------------------
# Nouns
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Noun:
    en: str  # English singular
    en_pl: str  # English plural
    gender: str  # German gender: "m", "f" or "n"
    nom: str  # German nominative singular
    acc: str  # German accusative singular
    dat: str  # German dative singular
    pl: str  # German nominative/accusative plural
    kind: str  # which adjectives fit (see ADJECTIVES_BY_KIND)
    role: str | None  # for living beings: which verbs and places fit; None for things


# fmt: off
NOUN_TABLE = (
    #     English          English pl         g    nom             acc             dat             plural          kind         role
    # people (weak masculine nouns take -en outside the nominative)
    Noun("man",            "men",             "m", "Mann",         "Mann",         "Mann",         "Männer",       "adult",     "human"),
    Noun("woman",          "women",           "f", "Frau",         "Frau",         "Frau",         "Frauen",       "adult",     "human"),
    Noun("student",        "students",        "m", "Student",      "Studenten",    "Studenten",    "Studenten",    "adult",     "human"),
    Noun("teacher",        "teachers",        "m", "Lehrer",       "Lehrer",       "Lehrer",       "Lehrer",       "adult",     "human"),
    Noun("cook",           "cooks",           "m", "Koch",         "Koch",         "Koch",         "Köche",        "adult",     "human"),
    Noun("police officer", "police officers", "m", "Polizist",     "Polizisten",   "Polizisten",   "Polizisten",   "adult",     "human"),
    Noun("farmer",         "farmers",         "m", "Bauer",        "Bauern",       "Bauern",       "Bauern",       "adult",     "human"),
    Noun("tourist",        "tourists",        "m", "Tourist",      "Touristen",    "Touristen",    "Touristen",    "adult",     "human"),
    Noun("musician",       "musicians",       "m", "Musiker",      "Musiker",      "Musiker",      "Musiker",      "adult",     "human"),
    Noun("waiter",         "waiters",         "m", "Kellner",      "Kellner",      "Kellner",      "Kellner",      "adult",     "human"),
    Noun("grandmother",    "grandmothers",    "f", "Großmutter",   "Großmutter",   "Großmutter",   "Großmütter",   "elder",     "human"),
    Noun("grandfather",    "grandfathers",    "m", "Großvater",    "Großvater",    "Großvater",    "Großväter",    "elder",     "human"),
    Noun("boy",            "boys",            "m", "Junge",        "Jungen",       "Jungen",       "Jungen",       "child",     "human"),
    Noun("girl",           "girls",           "n", "Mädchen",      "Mädchen",      "Mädchen",      "Mädchen",      "child",     "human"),
    Noun("child",          "children",        "n", "Kind",         "Kind",         "Kind",         "Kinder",       "child",     "human"),
    Noun("baby",           "babies",          "n", "Baby",         "Baby",         "Baby",         "Babys",        "child",     "baby"),
    # animals
    Noun("dog",            "dogs",            "m", "Hund",         "Hund",         "Hund",         "Hunde",        "animal",    "pet"),
    Noun("cat",            "cats",            "f", "Katze",        "Katze",        "Katze",        "Katzen",       "animal",    "pet"),
    Noun("horse",          "horses",          "n", "Pferd",        "Pferd",        "Pferd",        "Pferde",       "animal",    "farm"),
    Noun("cow",            "cows",            "f", "Kuh",          "Kuh",          "Kuh",          "Kühe",         "animal",    "farm"),
    Noun("sheep",          "sheep",           "n", "Schaf",        "Schaf",        "Schaf",        "Schafe",       "animal",    "farm"),
    Noun("bird",           "birds",           "m", "Vogel",        "Vogel",        "Vogel",        "Vögel",        "animal",    "bird"),
    Noun("duck",           "ducks",           "f", "Ente",         "Ente",         "Ente",         "Enten",        "animal",    "waterbird"),
    Noun("monkey",         "monkeys",         "m", "Affe",         "Affen",        "Affen",        "Affen",        "animal",    "wild"),
    Noun("bear",           "bears",           "m", "Bär",          "Bären",        "Bären",        "Bären",        "animal",    "wild"),
    # vehicles
    Noun("bicycle",        "bicycles",        "n", "Fahrrad",      "Fahrrad",      "Fahrrad",      "Fahrräder",    "vehicle",   None),
    Noun("motorcycle",     "motorcycles",     "n", "Motorrad",     "Motorrad",     "Motorrad",     "Motorräder",   "vehicle",   None),
    Noun("car",            "cars",            "n", "Auto",         "Auto",         "Auto",         "Autos",        "vehicle",   None),
    Noun("boat",           "boats",           "n", "Boot",         "Boot",         "Boot",         "Boote",        "vehicle",   None),
    Noun("stroller",       "strollers",       "m", "Kinderwagen",  "Kinderwagen",  "Kinderwagen",  "Kinderwagen",  "vehicle",   None),
    # things to carry
    Noun("bag",            "bags",            "f", "Tasche",       "Tasche",       "Tasche",       "Taschen",      "container", None),
    Noun("box",            "boxes",           "f", "Kiste",        "Kiste",        "Kiste",        "Kisten",       "container", None),
    Noun("basket",         "baskets",         "m", "Korb",         "Korb",         "Korb",         "Körbe",        "container", None),
    Noun("suitcase",       "suitcases",       "m", "Koffer",       "Koffer",       "Koffer",       "Koffer",       "container", None),
    Noun("ball",           "balls",           "m", "Ball",         "Ball",         "Ball",         "Bälle",        "item",      None),
    Noun("kite",           "kites",           "m", "Drachen",      "Drachen",      "Drachen",      "Drachen",      "item",      None),
    Noun("umbrella",       "umbrellas",       "m", "Regenschirm",  "Regenschirm",  "Regenschirm",  "Regenschirme", "item",      None),
    Noun("cup",            "cups",            "f", "Tasse",        "Tasse",        "Tasse",        "Tassen",       "item",      None),
    Noun("camera",         "cameras",         "f", "Kamera",       "Kamera",       "Kamera",       "Kameras",      "item",      None),
    Noun("stick",          "sticks",          "m", "Stock",        "Stock",        "Stock",        "Stöcke",       "stick",     None),
    # clothing
    Noun("hat",            "hats",            "m", "Hut",          "Hut",          "Hut",          "Hüte",         "clothing",  None),
    Noun("jacket",         "jackets",         "f", "Jacke",        "Jacke",        "Jacke",        "Jacken",       "clothing",  None),
    Noun("scarf",          "scarves",         "m", "Schal",        "Schal",        "Schal",        "Schals",       "clothing",  None),
    Noun("dress",          "dresses",         "n", "Kleid",        "Kleid",        "Kleid",        "Kleider",      "clothing",  None),
    Noun("helmet",         "helmets",         "m", "Helm",         "Helm",         "Helm",         "Helme",        "clothing",  None),
    # food
    Noun("apple",          "apples",          "m", "Apfel",        "Apfel",        "Apfel",        "Äpfel",        "food",      None),
    Noun("pretzel",        "pretzels",        "f", "Brezel",       "Brezel",       "Brezel",       "Brezeln",      "food",      None),
    Noun("cake",           "cakes",           "m", "Kuchen",       "Kuchen",       "Kuchen",       "Kuchen",       "food",      None),
    Noun("banana",         "bananas",         "f", "Banane",       "Banane",       "Banane",       "Bananen",      "food",      None),
    Noun("pizza",          "pizzas",          "f", "Pizza",        "Pizza",        "Pizza",        "Pizzen",       "food",      None),
    Noun("orange",         "oranges",         "f", "Orange",       "Orange",       "Orange",       "Orangen",      "food",      None),
    # things to read or look at
    Noun("book",           "books",           "n", "Buch",         "Buch",         "Buch",         "Bücher",       "paper",     None),
    Noun("newspaper",      "newspapers",      "f", "Zeitung",      "Zeitung",      "Zeitung",      "Zeitungen",    "paper",     None),
    Noun("letter",         "letters",         "m", "Brief",        "Brief",        "Brief",        "Briefe",       "paper",     None),
    Noun("map",            "maps",            "f", "Landkarte",    "Landkarte",    "Landkarte",    "Landkarten",   "paper",     None),
    Noun("picture",        "pictures",        "n", "Bild",         "Bild",         "Bild",         "Bilder",       "picture",   None),
    Noun("flower",         "flowers",         "f", "Blume",        "Blume",        "Blume",        "Blumen",       "flower",    None),
)
# fmt: on
NOUNS = {noun.en: noun for noun in NOUN_TABLE}

# --------------------------------------------------------------------------
# Adjectives
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Adjective:
    en: str
    e: str  # German form with ending -e   (e.g. "junge")
    en_: str  # German form with ending -en  (e.g. "jungen")
    er: str  # German form with ending -er  (e.g. "junger")
    es: str  # German form with ending -es  (e.g. "junges")

    def form(self, ending: str) -> str:
        return {"e": self.e, "en": self.en_, "er": self.er, "es": self.es}[ending]


# fmt: off
ADJECTIVE_TABLE = (
    #          English        -e              -en               -er               -es
    Adjective("young",       "junge",        "jungen",         "junger",         "junges"),
    Adjective("old",         "alte",         "alten",          "alter",          "altes"),
    Adjective("tall",        "große",        "großen",         "großer",         "großes"),
    Adjective("big",         "große",        "großen",         "großer",         "großes"),
    Adjective("little",      "kleine",       "kleinen",        "kleiner",        "kleines"),
    Adjective("small",       "kleine",       "kleinen",        "kleiner",        "kleines"),
    Adjective("happy",       "fröhliche",    "fröhlichen",     "fröhlicher",     "fröhliches"),
    Adjective("tired",       "müde",         "müden",          "müder",          "müdes"),
    Adjective("hungry",      "hungrige",     "hungrigen",      "hungriger",      "hungriges"),
    Adjective("friendly",    "freundliche",  "freundlichen",   "freundlicher",   "freundliches"),
    Adjective("strong",      "starke",       "starken",        "starker",        "starkes"),
    Adjective("red",         "rote",         "roten",          "roter",          "rotes"),
    Adjective("blue",        "blaue",        "blauen",         "blauer",         "blaues"),
    Adjective("green",       "grüne",        "grünen",         "grüner",         "grünes"),
    Adjective("yellow",      "gelbe",        "gelben",         "gelber",         "gelbes"),
    Adjective("black",       "schwarze",     "schwarzen",      "schwarzer",      "schwarzes"),
    Adjective("white",       "weiße",        "weißen",         "weißer",         "weißes"),
    Adjective("brown",       "braune",       "braunen",        "brauner",        "braunes"),
    Adjective("grey",        "graue",        "grauen",         "grauer",         "graues"),
    Adjective("new",         "neue",         "neuen",          "neuer",          "neues"),
    Adjective("heavy",       "schwere",      "schweren",       "schwerer",       "schweres"),
    Adjective("fresh",       "frische",      "frischen",       "frischer",       "frisches"),
    Adjective("delicious",   "leckere",      "leckeren",       "leckerer",       "leckeres"),
    Adjective("warm",        "warme",        "warmen",         "warmer",         "warmes"),
    Adjective("long",        "lange",        "langen",         "langer",         "langes"),
    Adjective("beautiful",   "schöne",       "schönen",        "schöner",        "schönes"),
    Adjective("dirty",       "schmutzige",   "schmutzigen",    "schmutziger",    "schmutziges"),
    Adjective("expensive",   "teure",        "teuren",         "teurer",         "teures"),
    Adjective("wet",         "nasse",        "nassen",         "nasser",         "nasses"),
    Adjective("interesting", "interessante", "interessanten",  "interessanter",  "interessantes"),
)
# fmt: on
ADJECTIVES = {adj.en: adj for adj in ADJECTIVE_TABLE}

# Which adjectives may describe which kind of noun.  "little"/"tall" are used
# for people and "small"/"big" for everything else, so that German "klein" and
# "groß" translate back unambiguously given the noun.
ADJECTIVES_BY_KIND = {
    "adult": ("young", "old", "tall", "happy", "tired", "hungry", "friendly", "strong"),
    "elder": ("old", "tall", "happy", "tired", "hungry", "friendly", "strong"),
    "child": ("little", "happy", "tired", "hungry", "friendly"),  # not "young": "junge Jungen"
    "animal": ("young", "old", "big", "small", "tired", "hungry", "friendly", "black", "white",
               "brown", "grey", "wet", "dirty", "beautiful"),
    "vehicle": ("old", "new", "red", "blue", "green", "yellow", "black", "white", "big", "small",
                "dirty", "expensive"),
    "container": ("old", "new", "red", "blue", "green", "brown", "black", "big", "small", "heavy"),
    "item": ("old", "new", "red", "blue", "green", "yellow", "black", "white", "big", "small",
             "expensive"),
    "stick": ("long", "big", "small"),
    "clothing": ("old", "new", "red", "blue", "green", "yellow", "black", "white", "brown", "grey",
                 "warm", "beautiful", "expensive", "wet"),
    "food": ("fresh", "delicious", "big", "small"),
    "paper": ("old", "new", "interesting"),
    "picture": ("beautiful", "old", "new", "big", "small"),
    "flower": ("red", "yellow", "white", "blue", "beautiful"),
}

# --------------------------------------------------------------------------
# Determiners
# --------------------------------------------------------------------------

# English word for each determiner; "a" becomes "an" before a vowel.
ENGLISH_DETERMINERS = {
    "a": "a",
    "the": "the",
    "the+pl": "the",
    "two": "two",
    "three": "three",
    "four": "four",
    "several": "several",
    "bare": "",  # plural without a determiner: "apples"
}
PLURAL_DETERMINERS = ("the+pl", "two", "three", "four", "several", "bare")

# (determiner, case, gender or "pl") -> (German determiner, adjective ending)
# Mixed declension after ein/eine, weak after der/die/das, strong after
# numerals and "mehrere" or with no determiner at all.
# fmt: off
GERMAN_DETERMINERS = {
    ("a",       "nom", "m"):  ("ein",     "er"),
    ("a",       "nom", "f"):  ("eine",    "e"),
    ("a",       "nom", "n"):  ("ein",     "es"),
    ("a",       "acc", "m"):  ("einen",   "en"),
    ("a",       "acc", "f"):  ("eine",    "e"),
    ("a",       "acc", "n"):  ("ein",     "es"),
    ("a",       "dat", "m"):  ("einem",   "en"),
    ("a",       "dat", "f"):  ("einer",   "en"),
    ("a",       "dat", "n"):  ("einem",   "en"),
    ("the",     "nom", "m"):  ("der",     "e"),
    ("the",     "nom", "f"):  ("die",     "e"),
    ("the",     "nom", "n"):  ("das",     "e"),
    ("the",     "acc", "m"):  ("den",     "en"),
    ("the",     "acc", "f"):  ("die",     "e"),
    ("the",     "acc", "n"):  ("das",     "e"),
    ("the+pl",  "nom", "pl"): ("die",     "en"),
    ("the+pl",  "acc", "pl"): ("die",     "en"),
    ("two",     "nom", "pl"): ("zwei",    "e"),
    ("two",     "acc", "pl"): ("zwei",    "e"),
    ("three",   "nom", "pl"): ("drei",    "e"),
    ("three",   "acc", "pl"): ("drei",    "e"),
    ("four",    "nom", "pl"): ("vier",    "e"),
    ("four",    "acc", "pl"): ("vier",    "e"),
    ("several", "nom", "pl"): ("mehrere", "e"),
    ("several", "acc", "pl"): ("mehrere", "e"),
    ("bare",    "nom", "pl"): ("",        "e"),
    ("bare",    "acc", "pl"): ("",        "e"),
}
# fmt: on

# --------------------------------------------------------------------------
# Verbs
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Verb:
    en: str  # English -ing form, used as "is/are <en>"
    de_sg: str  # German 3rd person singular present
    de_pl: str  # German 3rd person plural present
    subjects: tuple[str, ...]  # noun roles that can be the subject
    settings: tuple[str, ...]  # place tags where this can happen
    objects: tuple[str, ...] = ()  # noun keys that can be the object; () = intransitive
    # "any": singular or plural object; "singular": singular object only;
    # "match": one each ("Two men are wearing hats", "A man is wearing a hat")
    object_number: str = "any"


HUMAN = ("human",)
IN_OR_OUT = ("outdoor", "indoor")

# fmt: off
VERBS = (
    # intransitive
    Verb("running",       "rennt",        "rennen",        ("human", "pet", "farm", "wild"), ("outdoor",)),
    Verb("walking",       "spaziert",     "spazieren",     HUMAN, ("outdoor",)),
    Verb("sitting",       "sitzt",        "sitzen",        ("human", "baby", "pet", "wild", "bird"), IN_OR_OUT),
    Verb("standing",      "steht",        "stehen",        ("human", "pet", "farm", "wild", "bird", "waterbird"), ("outdoor", "indoor", "water")),
    Verb("sleeping",      "schläft",      "schlafen",      ("human", "baby", "pet", "farm", "wild", "bird", "waterbird"), IN_OR_OUT),
    Verb("waiting",       "wartet",       "warten",        ("human", "pet"), IN_OR_OUT),
    Verb("dancing",       "tanzt",        "tanzen",        HUMAN, IN_OR_OUT),
    Verb("singing",       "singt",        "singen",        ("human", "bird"), IN_OR_OUT),
    Verb("laughing",      "lacht",        "lachen",        ("human", "baby"), IN_OR_OUT),
    Verb("swimming",      "schwimmt",     "schwimmen",     ("human", "pet", "waterbird", "wild"), ("water",)),
    Verb("jumping",       "springt",      "springen",      ("human", "pet", "wild"), ("outdoor", "water")),
    Verb("playing",       "spielt",       "spielen",       ("human", "baby", "pet", "wild"), ("outdoor", "indoor", "water")),
    # transitive (accusative object)
    Verb("riding",        "fährt",        "fahren",        HUMAN, ("outdoor",), ("bicycle", "motorcycle"), "match"),
    Verb("riding",        "reitet",       "reiten",        HUMAN, ("outdoor",), ("horse",), "match"),
    Verb("reading",       "liest",        "lesen",         HUMAN, IN_OR_OUT, ("book", "newspaper", "letter", "map"), "singular"),
    # people eat ("essen"), animals eat ("fressen")
    Verb("eating",        "isst",         "essen",         HUMAN, IN_OR_OUT, ("apple", "pretzel", "cake", "banana", "pizza", "orange")),
    Verb("eating",        "frisst",       "fressen",       ("pet", "farm", "wild", "bird"), IN_OR_OUT, ("apple", "banana")),
    Verb("carrying",      "trägt",        "tragen",        HUMAN, IN_OR_OUT, ("bag", "box", "basket", "suitcase", "child", "baby", "bicycle")),
    Verb("carrying",      "trägt",        "tragen",        ("pet",), IN_OR_OUT, ("stick", "ball"), "singular"),
    Verb("holding",       "hält",         "halten",        HUMAN, IN_OR_OUT, ("umbrella", "cup", "flower", "book", "camera", "baby", "ball", "kite", "map", "bag")),
    Verb("wearing",       "trägt",        "tragen",        HUMAN, IN_OR_OUT, ("hat", "jacket", "scarf", "dress", "helmet"), "match"),
    Verb("throwing",      "wirft",        "werfen",        HUMAN, ("outdoor",), ("ball", "stick")),
    Verb("pushing",       "schiebt",      "schieben",      HUMAN, ("outdoor",), ("stroller", "bicycle", "car", "motorcycle"), "singular"),
    Verb("feeding",       "füttert",      "füttern",       HUMAN, IN_OR_OUT, ("dog", "cat", "horse", "cow", "sheep", "bird", "duck", "monkey", "bear", "baby")),
    Verb("washing",       "wäscht",       "waschen",       HUMAN, ("outdoor",), ("car", "dog", "bicycle", "horse", "motorcycle")),
    Verb("painting",      "malt",         "malen",         HUMAN, IN_OR_OUT, ("picture", "flower", "bird", "boat", "horse")),
    Verb("repairing",     "repariert",    "reparieren",    HUMAN, ("outdoor",), ("bicycle", "car", "motorcycle", "boat", "umbrella", "stroller"), "singular"),
    Verb("buying",        "kauft",        "kaufen",        HUMAN, ("shop",), ("flower", "apple", "banana", "cake", "hat", "newspaper", "orange", "pretzel", "umbrella", "map")),
    Verb("baking",        "backt",        "backen",        HUMAN, ("kitchen",), ("cake", "pizza", "pretzel")),
    Verb("watching",      "beobachtet",   "beobachten",    HUMAN, IN_OR_OUT, ("bird", "duck", "dog", "cat", "horse", "cow", "sheep", "monkey", "bear", "boat")),
    Verb("watching",      "beobachtet",   "beobachten",    ("pet",), ("outdoor",), ("bird", "duck")),
    Verb("chasing",       "jagt",         "jagen",         ("pet",), ("outdoor",), ("ball", "cat", "bird", "duck")),
    Verb("hugging",       "umarmt",       "umarmen",       HUMAN, IN_OR_OUT, ("dog", "cat", "child", "baby", "horse")),
    Verb("photographing", "fotografiert", "fotografieren", HUMAN, IN_OR_OUT, ("bird", "duck", "horse", "cow", "boat", "flower", "bear", "monkey", "dog", "cat")),
)
# fmt: on

# --------------------------------------------------------------------------
# Places (full phrases: the dative and the contractions im/am are spelled out)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    en: str
    de: str
    tags: tuple[str, ...]  # matched against Verb.settings
    roles: tuple[str, ...]  # noun roles that can plausibly be there


# fmt: off
PLACES = (
    Place("in the park",          "im Park",           ("outdoor",),         ("human", "baby", "pet", "bird", "waterbird")),
    Place("on the beach",         "am Strand",         ("outdoor",),         ("human", "baby", "pet", "farm", "bird")),
    Place("on the street",        "auf der Straße",    ("outdoor",),         ("human", "pet")),
    Place("in the garden",        "im Garten",         ("outdoor",),         ("human", "baby", "pet", "bird")),
    Place("in the kitchen",       "in der Küche",      ("indoor", "kitchen"), ("human", "baby", "pet")),
    Place("at the train station", "am Bahnhof",        ("outdoor", "shop"),  ("human",)),
    Place("on the bridge",        "auf der Brücke",    ("outdoor",),         ("human", "pet")),
    Place("next to the house",    "neben dem Haus",    ("outdoor",),         ("human", "pet", "farm")),
    Place("in front of the church", "vor der Kirche",  ("outdoor",),         ("human", "pet")),
    Place("in the forest",        "im Wald",           ("outdoor",),         ("human", "pet", "farm", "wild", "bird")),
    Place("in the meadow",        "auf der Wiese",     ("outdoor",),         ("human", "pet", "farm", "bird")),
    Place("at the market",        "auf dem Markt",     ("outdoor", "shop"),  ("human",)),
    Place("in the snow",          "im Schnee",         ("outdoor",),         ("human", "pet", "farm", "wild")),
    Place("by the lake",          "am See",            ("outdoor",),         ("human", "pet", "farm", "bird", "waterbird")),
    Place("in the lake",          "im See",            ("water",),           ("human", "pet", "waterbird", "wild")),
    Place("in the river",         "im Fluss",          ("water",),           ("human", "pet", "waterbird", "wild")),
    Place("at the zoo",           "im Zoo",            ("outdoor",),         ("human", "wild", "bird")),
    Place("under a tree",         "unter einem Baum",  ("outdoor",),         ("human", "baby", "pet", "farm", "wild", "bird")),
    Place("on the stage",         "auf der Bühne",     ("indoor",),          ("human",)),
    Place("in the living room",   "im Wohnzimmer",     ("indoor",),          ("human", "baby", "pet")),
)
# fmt: on

# Things a person can be "with": "A woman with a red umbrella is ..." ->
# "Eine Frau mit einem roten Regenschirm ..." (dative after "mit").
COMPANIONS = ("umbrella", "bag", "camera", "dog", "ball", "kite", "basket", "suitcase", "hat")

# Kinds of object that do not fit indoors ("in the kitchen", "on the stage").
OUTDOOR_ONLY_KINDS = ("vehicle",)

# Objects that only make sense one at a time ("holding a baby", not "holding babies").
SINGULAR_ONLY_OBJECTS = ("baby", "child")

# --------------------------------------------------------------------------
# Sampling probabilities
# --------------------------------------------------------------------------

SUBJECT_DETERMINERS = (("a", 45), ("the", 20), ("the+pl", 12), ("two", 10), ("three", 6),
                       ("four", 3), ("several", 4))
OBJECT_DETERMINERS = (("a", 55), ("the", 20), ("two", 8), ("three", 4), ("several", 3),
                      ("bare", 10))
SINGULAR_OBJECT_DETERMINERS = (("a", 75), ("the", 25))
P_ADJECTIVE = 0.45  # each noun phrase gets an adjective with this probability
P_PLACE = 0.7  # a place phrase is added (when one fits) with this probability
P_COORDINATED = 0.08  # "A man and a dog are ..."
GOOD_COMPANY = ({"human", "pet"}, {"human", "baby"})  # roles that can be coordinated
P_COMPANION = 0.12  # "A man with a dog is ..." (singular human subjects only)


# --------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------


def weighted(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    names = [name for name, _ in table]
    weights = [weight for _, weight in table]
    return rng.choices(names, weights=weights)[0]


def maybe_adjective(rng: random.Random, noun: Noun) -> Adjective | None:
    if rng.random() < P_ADJECTIVE:
        return ADJECTIVES[rng.choice(ADJECTIVES_BY_KIND[noun.kind])]
    return None


def noun_phrase(det: str, adj: Adjective | None, noun: Noun, case: str) -> tuple[str, str]:
    """Return the (English, German) noun phrase; case is "nom", "acc" or "dat"."""
    plural = det in PLURAL_DETERMINERS
    words = ([adj.en] if adj else []) + [noun.en_pl if plural else noun.en]
    en_det = ENGLISH_DETERMINERS[det]
    if det == "a" and words[0][0] in "aeiou":
        en_det = "an"
    en = " ".join(([en_det] if en_det else []) + words)

    de_det, ending = GERMAN_DETERMINERS[(det, case, "pl" if plural else noun.gender)]
    if plural:
        de_noun = noun.pl
    else:
        de_noun = {"nom": noun.nom, "acc": noun.acc, "dat": noun.dat}[case]
    de_words = [de_det] if de_det else []
    if adj:
        de_words.append(adj.form(ending))
    de_words.append(de_noun)
    return en, " ".join(de_words)


def capitalise(text: str) -> str:
    return text[0].upper() + text[1:]


def make_pair(rng: random.Random) -> tuple[str, str]:
    """Generate one (English, German) sentence pair."""
    verb = rng.choice(VERBS)
    subject_nouns = [n for n in NOUN_TABLE if n.role in verb.subjects]

    # Subject: usually one noun phrase; sometimes two singular ones joined by
    # "and" (two of a kind, or a person with a pet or a baby).
    first = rng.choice(subject_nouns)
    partners = [
        noun
        for noun in subject_nouns
        if noun is not first and (noun.role == first.role or {noun.role, first.role} in GOOD_COMPANY)
    ]
    if partners and rng.random() < P_COORDINATED:
        second = rng.choice(partners)
        subjects = [(rng.choice(("a", "the")), first), (rng.choice(("a", "the")), second)]
        plural_subject = True
    else:
        det = weighted(rng, SUBJECT_DETERMINERS)
        subjects = [(det, first)]
        plural_subject = det in PLURAL_DETERMINERS
    phrases = [noun_phrase(det, maybe_adjective(rng, noun), noun, "nom") for det, noun in subjects]
    subject_en = " and ".join(en for en, _ in phrases)
    subject_de = " und ".join(de for _, de in phrases)
    living = [noun for _, noun in subjects]  # nouns that must fit the place
    used = {noun.en for _, noun in subjects}

    # Object (accusative).
    object_en = object_de = ""
    outdoor_only = False
    if verb.objects:
        choices = [key for key in verb.objects if key not in used]
        obj = NOUNS[rng.choice(choices)]
        if obj.en in SINGULAR_ONLY_OBJECTS:
            det = weighted(rng, SINGULAR_OBJECT_DETERMINERS)
        elif verb.object_number == "match":
            det = "bare" if plural_subject else weighted(rng, SINGULAR_OBJECT_DETERMINERS)
        elif verb.object_number == "singular":
            det = weighted(rng, SINGULAR_OBJECT_DETERMINERS)
        else:
            det = weighted(rng, OBJECT_DETERMINERS)
        object_en, object_de = noun_phrase(det, maybe_adjective(rng, obj), obj, "acc")
        used.add(obj.en)
        outdoor_only = obj.kind in OUTDOOR_ONLY_KINDS
        if obj.role:
            living.append(obj)

    # Companion: "A man with a dog" (dative after "mit"); nobody swims with an umbrella.
    if (
        "water" not in verb.settings
        and len(subjects) == 1
        and not plural_subject
        and subjects[0][1].role == "human"
        and rng.random() < P_COMPANION
    ):
        companion = NOUNS[rng.choice([key for key in COMPANIONS if key not in used])]
        en, de = noun_phrase("a", maybe_adjective(rng, companion), companion, "dat")
        subject_en += f" with {en}"
        subject_de += f" mit {de}"
        if companion.role:
            living.append(companion)

    # Place (a fixed dative phrase).
    places = [
        place
        for place in PLACES
        if any(tag in verb.settings for tag in place.tags)
        and all(noun.role in place.roles for noun in living)
        and not (outdoor_only and "indoor" in place.tags)
    ]
    place_en = place_de = ""
    if places and rng.random() < P_PLACE:
        place = rng.choice(places)
        place_en, place_de = place.en, place.de

    be = "are" if plural_subject else "is"
    de_verb = verb.de_pl if plural_subject else verb.de_sg
    en_words = [subject_en, be, verb.en, object_en, place_en]
    de_words = [subject_de, de_verb, object_de, place_de]
    english = capitalise(" ".join(w for w in en_words if w)) + "."
    german = capitalise(" ".join(w for w in de_words if w)) + "."
    return english, german


def words(sentence: str) -> list[str]:
    """The lower-cased words of a generated sentence (final period dropped)."""
    return sentence[:-1].lower().split()


def generate(seed: int) -> dict[str, list[tuple[str, str]]]:
    """Generate every split; return {split name: [(English, German), ...]}.

    No English and no German sentence occurs twice in the whole corpus, so dev
    and test never overlap train.  Train comes first; dev and test then only
    take pairs whose words all occur in train, so a model trained on train has
    seen every word it is evaluated on.
    """
    rng = random.Random(seed)
    seen_en: set[str] = set()
    seen_de: set[str] = set()
    vocab_en: set[str] = set()
    vocab_de: set[str] = set()
    splits: dict[str, list[tuple[str, str]]] = {}
    for name, size in SPLITS:
        pairs: list[tuple[str, str]] = []
        attempts = 0
        while len(pairs) < size:
            attempts += 1
            if attempts > 100 * size:
                raise RuntimeError("the grammar is too small for the requested corpus size")
            english, german = make_pair(rng)
            if english in seen_en or german in seen_de:
                continue
            if name != "train" and not (
                set(words(english)) <= vocab_en and set(words(german)) <= vocab_de
            ):
                continue
            seen_en.add(english)
            seen_de.add(german)
            pairs.append((english, german))
        if name == "train":
            vocab_en = {w for english, _ in pairs for w in words(english)}
            vocab_de = {w for _, german in pairs for w in words(german)}
        splits[name] = pairs
    return splits


def check_tables() -> None:
    """Catch typos in the tables before generating anything."""
    roles = {noun.role for noun in NOUN_TABLE if noun.role}
    for noun in NOUN_TABLE:
        assert noun.gender in ("m", "f", "n"), noun
        assert noun.kind in ADJECTIVES_BY_KIND, noun
        for form in (noun.nom, noun.acc, noun.dat, noun.pl):
            assert form[0].isupper(), noun
    for adj in ADJECTIVE_TABLE:
        assert adj.e.endswith("e") and adj.en_.endswith("en"), adj
        assert adj.er.endswith("er") and adj.es.endswith("es"), adj
        assert adj.en_ == adj.e + "n" and adj.er == adj.e + "r" and adj.es == adj.e + "s", adj
    for kind, adjectives in ADJECTIVES_BY_KIND.items():
        for name in adjectives:
            assert name in ADJECTIVES, (kind, name)
    settings = {tag for place in PLACES for tag in place.tags}
    for verb in VERBS:
        assert verb.de_pl.endswith("n"), verb
        assert set(verb.subjects) <= roles, verb
        assert set(verb.settings) <= settings, verb
        assert all(key in NOUNS for key in verb.objects), verb
        assert verb.object_number in ("any", "singular", "match"), verb
    for place in PLACES:
        assert set(place.roles) <= roles, place
    assert all(key in NOUNS for key in COMPANIONS + SINGULAR_ONLY_OBJECTS)
    assert all(kind in ADJECTIVES_BY_KIND for kind in OUTDOOR_ONLY_KINDS)
    assert set(GERMAN_DETERMINERS.values()) and all(
        ending in ("e", "en", "er", "es") for _, ending in GERMAN_DETERMINERS.values()
    )


def write_lines(path: Path, lines: list[str]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for line in lines:
            handle.write(line + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
        help="output directory (default: the repository's data/ folder)",
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="random seed (default: %(default)s)"
    )
    args = parser.parse_args(argv)

    check_tables()
    splits = generate(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, pairs in splits.items():
        write_lines(args.out / f"{name}.en", [english for english, _ in pairs])
        write_lines(args.out / f"{name}.de", [german for _, german in pairs])
        print(f"{args.out / name}.{{en,de}}: {len(pairs)} pairs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
