"""nmt: LSTM encoder-decoder neural machine translation with additive attention.

`from nmt import Translator` is the Python API (see `nmt.translation`); it is
imported on first use, so that `nmt --help` answers without loading PyTorch.
"""

__version__ = "0.1.0"

__all__ = ["Translator", "Translation", "TextHypothesis"]


def __getattr__(name: str):
    if name in __all__:
        from nmt import translation
        return getattr(translation, name)
    raise AttributeError(f"module 'nmt' has no attribute {name!r}")
