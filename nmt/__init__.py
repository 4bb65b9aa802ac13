"""nmt: LSTM encoder-decoder neural machine translation with additive attention."""

__version__ = "0.1.0"
