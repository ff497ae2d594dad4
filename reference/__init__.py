"""A minimal float64 NumPy reference for the Keras recurrent layers.

The formulas follow the article in ``../shared/seed/`` ("A practical guide to RNN
and LSTM in Keras"). Nothing here imports Keras: this package is the
specification that the installed Keras is checked against.

- :mod:`rnnspec.reference.activations` -- the activation functions, by their Keras names.
- :mod:`rnnspec.reference.cells` -- one time step of SimpleRNN, LSTM and GRU.
- :mod:`rnnspec.reference.layer` -- the loop over time (masks, go_backwards, states),
  stacking and Bidirectional.
- :mod:`rnnspec.reference.structure` -- parameter counts and weight shapes.
"""

from rnnspec.reference.activations import activation, ACTIVATION_NAMES, HARD_SIGMOID_CONVENTIONS
from rnnspec.reference.cells import CellSpec, lstm_step, gru_step, simple_rnn_step, step_function, initial_state
from rnnspec.reference.layer import run_layer, run_stack, run_bidirectional, LayerResult
from rnnspec.reference.structure import (param_count, weight_shapes, dense_param_count,
                                 bidirectional_param_count, stacked_param_counts)

__all__ = [
    "activation", "ACTIVATION_NAMES", "HARD_SIGMOID_CONVENTIONS",
    "CellSpec", "lstm_step", "gru_step", "simple_rnn_step", "step_function", "initial_state",
    "run_layer", "run_stack", "run_bidirectional", "LayerResult",
    "param_count", "weight_shapes", "dense_param_count", "bidirectional_param_count",
    "stacked_param_counts",
]
