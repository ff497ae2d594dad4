"""Faults on the GPU kernels: they change results only where cuDNN runs.

The catalogue's cell faults patch a cell's Python ``call``, which the cuDNN
path never reaches, so "caught on the GPU" would otherwise say nothing about
cuDNN. These faults patch what only the cuDNN path runs in Keras 3.15: the
conversion of Keras weights to the cuDNN layout and the unpacking of its
results. On the CPU they change nothing (cuDNN is never called there), so
they are kept out of :data:`rnnspec.faults.catalogue.CATALOGUE` (the CPU mutation
run) and listed in :data:`GPU_FAULTS`; ``RNNSPEC_FAULT=<name>`` reaches them
as it reaches any fault. ``tools/gpu_run.sh`` runs them on a GPU, with TF32
off and at the backend's default, and the kernel report
(``note_observation("kernel on gpu", ...)``) shows that cuDNN ran.

Each fault is for one backend (``backends``): torch reaches cuDNN through
``keras.src.backend.torch.rnn.prepare_lstm_params`` / ``prepare_gru_params``
and ``_cudnn_lstm``; JAX through ``jax.experimental.rnn.lstm`` (there is no
cuDNN GRU on JAX).
"""

from rnnspec.faults.catalogue import Fault, Patcher  # noqa: F401  (Patcher: the install argument)

GPU_FAULTS = []


def gpu_fault(name, imitates, backend, region):
    def register(install):
        GPU_FAULTS.append(Fault(name, imitates, (3,), "spec/test_equivalence.py", install,
                                region, backends=(backend,)))
        return install
    return register


def _torch_rnn():
    import importlib
    return importlib.import_module("keras.src.backend.torch.rnn")


def _swap_row_blocks(t, n, i, j):
    """Swap row blocks ``i`` and ``j`` of ``n`` equal blocks along dim 0 (torch's gate axis)."""
    import torch
    blocks = list(torch.chunk(t, n, dim=0))
    blocks[i], blocks[j] = blocks[j], blocks[i]
    return torch.cat(blocks, dim=0).contiguous()


@gpu_fault("cudnn_lstm_params_if_swapped",
           "Keras LSTM weights converted to the cuDNN layout with the input and forget gate "
           "blocks swapped, as when porting between frameworks that order the gates differently",
           backend="torch", region="cuDNN LSTM only (torch backend on a GPU)")
def _(p):
    def make(original):
        def prepare(*args, **kwargs):
            return [_swap_row_blocks(w, 4, 0, 1) for w in original(*args, **kwargs)]
        return prepare
    p.wrap(_torch_rnn(), "prepare_lstm_params", make)


@gpu_fault("cudnn_gru_params_not_reordered",
           "Keras GRU gates (z, r, h) handed to cuDNN, which expects (r, z, h): the reordering "
           "step of the weight conversion lost",
           backend="torch", region="cuDNN GRU only (torch backend on a GPU)")
def _(p):
    def make(original):
        def prepare(*args, **kwargs):
            return [_swap_row_blocks(w, 3, 0, 1) for w in original(*args, **kwargs)]
        return prepare
    p.wrap(_torch_rnn(), "prepare_gru_params", make)


@gpu_fault("cudnn_lstm_final_states_swapped",
           "the fused LSTM returns its final states as [c, h] instead of [h, c]",
           backend="torch", region="cuDNN LSTM with return_state (torch backend on a GPU)")
def _(p):
    def make(original):
        def cudnn_lstm(*args, **kwargs):
            last, outputs, (h, c) = original(*args, **kwargs)
            return last, outputs, [c, h]
        return cudnn_lstm
    p.wrap(_torch_rnn(), "_cudnn_lstm", make)


@gpu_fault("cudnn_lstm_bias_dropped",
           "the bias left out when Keras LSTM weights are packed into cuDNN's flat weight blob",
           backend="jax", region="cuDNN LSTM only (JAX backend on a GPU, jax.experimental.rnn)")
def _(p):
    import importlib
    jax_rnn = importlib.import_module("jax.experimental.rnn")

    def make(original):
        def lstm(x, h_0, c_0, weights, seq_lengths, *, hidden_size, bidirectional=False, **kwargs):
            n_bias = (2 if bidirectional else 1) * 8 * hidden_size   # b_ih and b_hh per direction
            weights = weights.at[-n_bias:].set(0.0)
            return original(x, h_0, c_0, weights, seq_lengths, hidden_size=hidden_size,
                            bidirectional=bidirectional, **kwargs)
        return lstm
    p.wrap(jax_rnn, "lstm", make)
