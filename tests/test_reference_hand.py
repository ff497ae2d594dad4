"""Hand-computed checks of the float64 reference in ``reference/``.

Every expected value here is derived independently of the reference: either
a number worked out in a comment (the article's parameter counts), or a
scalar recomputation with ``math.tanh`` / ``math.exp`` written out step by
step. Nothing in this file calls the reference to produce an expected value.

The worked recurrences use 1 unit, 1 feature and 2 time steps, with a
different weight for every gate, so that a swapped gate order, a mixed-up
bias row, or a wrong recurrence would change the numbers.
"""

import math

import numpy as np
import pytest

from rnnspec.reference.activations import (
    ACTIVATION_NAMES,
    activation,
    hard_sigmoid_keras2,
    hard_sigmoid_keras3,
)
from rnnspec.reference.cells import CellSpec, initial_state
from rnnspec.reference.layer import merge, run_bidirectional, run_layer
from rnnspec.reference.structure import (
    bidirectional_param_count,
    dense_param_count,
    param_count,
    stacked_param_counts,
    weight_shapes,
)

TOL = 1e-12


def sig(v):
    """The logistic sigmoid, written out: 1 / (1 + e^-v)."""
    return 1.0 / (1.0 + math.exp(-v))


def x_of(*steps):
    """A (batch=1, timesteps, features=1) input from scalar steps."""
    return np.array([[[s] for s in steps]], dtype=np.float64)


def close(actual, expected):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=0, atol=TOL)


# ---------------------------------------------------------------------------
# Parameter counts and weight shapes (the article's published numbers)
# ---------------------------------------------------------------------------

def test_article_simple_rnn_with_dense_has_17921_params():
    """SimpleRNN(128) on 10 features plus Dense(1) has 17,921 parameters.

    128*10 (kernel) + 128*128 (recurrent) + 128 (bias) = 1280 + 16384 + 128
    = 17,792; Dense(1) on 128 inputs = 128 + 1 = 129; total 17,921.
    """
    assert param_count("simple_rnn", 128, 10) == 17792
    assert dense_param_count(128, 1) == 129
    assert param_count("simple_rnn", 128, 10) + dense_param_count(128, 1) == 17921


def test_article_stacked_simple_rnn_layer_has_32896_params():
    """A SimpleRNN(128) over another SimpleRNN(128) has 32,896 parameters.

    128*128 + 128*128 + 128 = 16384 + 16384 + 128 = 32,896.
    """
    assert param_count("simple_rnn", 128, 128) == 32896


def test_article_lstm_with_dense_has_71297_params():
    """LSTM(128) on 10 features plus Dense(1) has 71,297 parameters.

    4 * (128*10 + 128*128 + 128) = 4 * 17,792 = 71,168; + 129 = 71,297.
    """
    assert param_count("lstm", 128, 10) == 71168
    assert param_count("lstm", 128, 10) + dense_param_count(128, 1) == 71297


def test_article_lstm_weight_shapes():
    """LSTM(128) on 10 features: kernel (10, 512), recurrent (128, 512), bias (512,)."""
    assert weight_shapes("lstm", 128, 10) == [
        ("kernel", (10, 512)),
        ("recurrent_kernel", (128, 512)),
        ("bias", (512,)),
    ]


def test_simple_rnn_weight_shapes():
    """SimpleRNN(128) on 10 features: one gate block, width 128."""
    assert weight_shapes("simple_rnn", 128, 10) == [
        ("kernel", (10, 128)),
        ("recurrent_kernel", (128, 128)),
        ("bias", (128,)),
    ]


def test_gru_reset_after_true_has_two_bias_rows():
    """GRU(64) on 10 features, reset_after=True: bias (2, 192), 14,592 params.

    3 * (64*10 + 64*64 + 64) = 3 * (640 + 4096 + 64) = 3 * 4800 = 14,400,
    plus the second bias row of 3*64 = 192: 14,592.
    """
    assert weight_shapes("gru", 64, 10, reset_after=True) == [
        ("kernel", (10, 192)),
        ("recurrent_kernel", (64, 192)),
        ("bias", (2, 192)),
    ]
    assert param_count("gru", 64, 10, reset_after=True) == 14592
    # reset_after defaults to True (the Keras 2.x / 3.x default).
    assert weight_shapes("gru", 64, 10) == weight_shapes("gru", 64, 10, reset_after=True)


def test_gru_reset_after_false_has_one_bias_row():
    """GRU(64) on 10 features, reset_after=False: bias (192,), 14,400 params."""
    assert weight_shapes("gru", 64, 10, reset_after=False) == [
        ("kernel", (10, 192)),
        ("recurrent_kernel", (64, 192)),
        ("bias", (192,)),
    ]
    assert param_count("gru", 64, 10, reset_after=False) == 14400


@pytest.mark.parametrize("kind, reset_after, expected", [
    # 128*10 + 128*128 = 1280 + 16384 = 17,664
    ("simple_rnn", True, 17664),
    # 4 * 17,664 = 70,656
    ("lstm", True, 70656),
    # GRU(64) on 10: 3 * (640 + 4096) = 14,208, whatever reset_after says
    ("gru", True, 3 * (64 * 10 + 64 * 64)),
    ("gru", False, 3 * (64 * 10 + 64 * 64)),
])
def test_use_bias_false_drops_the_bias(kind, reset_after, expected):
    """use_bias=False: no bias entry at all, and the count has no bias term."""
    units = 64 if kind == "gru" else 128
    shapes = weight_shapes(kind, units, 10, use_bias=False, reset_after=reset_after)
    assert [name for name, _ in shapes] == ["kernel", "recurrent_kernel"]
    assert param_count(kind, units, 10, use_bias=False, reset_after=reset_after) == expected
    if kind == "gru":
        assert expected == 14208


def test_stacked_param_counts():
    """Each stacked layer's input width is the layer below's output width.

    SimpleRNN(128) x 2 on 10 features: [17,792, 32,896] (article).
    Bidirectional LSTM(64) then LSTM(32) on 10 features:
      layer 1: 2 * 4 * (64*10 + 64*64 + 64) = 2 * 4 * 4800 = 38,400
      layer 2 sees 2*64 = 128 features:
               2 * 4 * (32*128 + 32*32 + 32) = 2 * 4 * 5152 = 41,216
    GRU(8) then GRU(4) on 3 features, reset_after=False, use_bias=False:
      3 * (8*3 + 64) = 264;  3 * (4*8 + 16) = 144
    """
    assert stacked_param_counts("simple_rnn", [128, 128], 10) == [17792, 32896]
    assert stacked_param_counts("lstm", [64, 32], 10, bidirectional=True) == [38400, 41216]
    assert stacked_param_counts("gru", [8, 4], 3, reset_after=False, use_bias=False) == [264, 144]


def test_bidirectional_param_count_is_two_copies():
    """Bidirectional holds two independent layers: twice the count.

    SimpleRNN(128) on 10: 2 * 17,792 = 35,584.
    GRU(64) on 10, reset_after=False: 2 * 14,400 = 28,800.
    """
    assert bidirectional_param_count("simple_rnn", 128, 10) == 35584
    assert bidirectional_param_count("gru", 64, 10, reset_after=False) == 28800


def test_bad_structure_arguments_raise():
    """Unknown kinds and non-positive sizes are rejected with ValueError."""
    with pytest.raises(ValueError):
        weight_shapes("transformer", 4, 4)
    with pytest.raises(ValueError):
        param_count("lstm", 0, 4)
    with pytest.raises(ValueError):
        param_count("lstm", 4, 0)


# ---------------------------------------------------------------------------
# Worked recurrences: 1 unit, 1 feature, 2 time steps
# ---------------------------------------------------------------------------

def test_simple_rnn_two_steps_by_hand():
    """SimpleRNN: h_t = tanh(x_t W + h_{t-1} U + b), from h_0 = 0."""
    W, U, b = 0.7, -0.4, 0.1
    x1, x2 = 0.5, -1.0
    h1 = math.tanh(x1 * W + 0.0 * U + b)          # tanh(0.45)
    h2 = math.tanh(x2 * W + h1 * U + b)           # tanh(-0.6 - 0.4 h1)
    assert h1 == pytest.approx(0.4218990052500079, abs=1e-15)

    spec = CellSpec("simple_rnn", 1)
    res = run_layer(spec, x_of(x1, x2), np.array([[W]]), np.array([[U]]), np.array([b]))
    close(res.sequence, [[[h1], [h2]]])
    close(res.last_output, [[h2]])
    assert len(res.states) == 1
    close(res.states[0], [[h2]])


def test_simple_rnn_hard_sigmoid_activation_keras2_vs_keras3():
    """activation='hard_sigmoid' in a cell follows the chosen convention.

    Pre-activation at step 1 is x W + b = 2.0 * 1.0 + 0.5 = 2.5:
      keras2: clip(0.2*2.5 + 0.5) = 1.0;  keras3: 2.5/6 + 0.5 = 0.91666...
    """
    W, U, b = 1.0, 0.5, 0.5
    x1, x2 = 2.0, -1.0

    def k2(v):
        return min(1.0, max(0.0, 0.2 * v + 0.5))

    def k3(v):
        return min(1.0, max(0.0, v / 6.0 + 0.5))

    for conv, hs in (("keras2", k2), ("keras3", k3)):
        h1 = hs(x1 * W + b)
        h2 = hs(x2 * W + h1 * U + b)
        spec = CellSpec("simple_rnn", 1, activation="hard_sigmoid", hard_sigmoid=conv)
        res = run_layer(spec, x_of(x1, x2), np.array([[W]]), np.array([[U]]), np.array([b]))
        close(res.sequence, [[[h1], [h2]]])
    assert k2(2.5) == 1.0 and k3(2.5) == pytest.approx(0.9166666666666666)


def test_lstm_two_steps_by_hand():
    """LSTM, gate columns i, f, c~, o; c' = s(f) c + s(i) tanh(c~); h' = s(o) tanh(c')."""
    Wi, Wf, Wc, Wo = 0.1, 0.2, 0.3, 0.4
    Ui, Uf, Uc, Uo = 0.5, -0.6, 0.7, -0.8
    bi, bf, bc, bo = 0.01, 1.0, -0.02, 0.03
    x1, x2 = 1.0, -2.0

    # step 1, h0 = c0 = 0
    zi, zf, zc, zo = x1 * Wi + bi, x1 * Wf + bf, x1 * Wc + bc, x1 * Wo + bo  # .11, 1.2, .28, .43
    c1 = sig(zf) * 0.0 + sig(zi) * math.tanh(zc)
    h1 = sig(zo) * math.tanh(c1)
    # step 2
    zi = x2 * Wi + h1 * Ui + bi
    zf = x2 * Wf + h1 * Uf + bf
    zc = x2 * Wc + h1 * Uc + bc
    zo = x2 * Wo + h1 * Uo + bo
    c2 = sig(zf) * c1 + sig(zi) * math.tanh(zc)
    h2 = sig(zo) * math.tanh(c2)

    spec = CellSpec("lstm", 1)
    res = run_layer(spec, x_of(x1, x2),
                    np.array([[Wi, Wf, Wc, Wo]]),
                    np.array([[Ui, Uf, Uc, Uo]]),
                    np.array([bi, bf, bc, bo]))
    close(res.sequence, [[[h1], [h2]]])
    close(res.last_output, [[h2]])
    assert len(res.states) == 2
    close(res.states[0], [[h2]])
    close(res.states[1], [[c2]])


def test_lstm_two_units_gate_blocks_are_contiguous():
    """With 2 units the 8 columns are [i1 i2 | f1 f2 | c1 c2 | o1 o2], not interleaved.

    One step from zero state with x = 1: the pre-activation of column k is
    kernel[0, k] + bias[k]. Initial c is nonzero so that f matters.
    """
    kernel = [0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8]
    bias = [0.05, 0.04, 0.03, 0.02, 0.01, -0.01, -0.02, -0.03]
    c0 = [0.9, -0.7]
    h0 = [0.0, 0.0]
    pre = [k + b for k, b in zip(kernel, bias)]
    h_exp, c_exp = [], []
    for j in range(2):
        i, f, c_t, o = pre[j], pre[2 + j], pre[4 + j], pre[6 + j]
        c = sig(f) * c0[j] + sig(i) * math.tanh(c_t)
        c_exp.append(c)
        h_exp.append(sig(o) * math.tanh(c))

    spec = CellSpec("lstm", 2)
    res = run_layer(spec, np.ones((1, 1, 1)), np.array([kernel]), np.full((2, 8), 0.3),
                    np.array(bias), initial_state=(np.array([h0]), np.array([c0])))
    close(res.states[0], [h_exp])
    close(res.states[1], [c_exp])


def test_gru_reset_after_true_two_steps_by_hand():
    """GRU reset_after=True: bias row 0 is the input bias, row 1 the recurrent bias.

    z = s(x Wz + bin_z + h Uz + brec_z); r = s(x Wr + bin_r + h Ur + brec_r)
    h~ = tanh(x Wh + bin_h + r (h Uh + brec_h)); h' = z h + (1 - z) h~
    """
    Wz, Wr, Wh = 0.1, 0.2, 0.3
    Uz, Ur, Uh = 0.4, -0.5, 0.6
    bin_z, bin_r, bin_h = 0.01, 0.02, 0.03
    brec_z, brec_r, brec_h = -0.04, 0.05, -0.06
    x1, x2 = 1.5, -0.5

    h = 0.0
    hs = []
    for x in (x1, x2):
        z = sig(x * Wz + bin_z + h * Uz + brec_z)
        r = sig(x * Wr + bin_r + h * Ur + brec_r)
        h_tilde = math.tanh(x * Wh + bin_h + r * (h * Uh + brec_h))
        h = z * h + (1.0 - z) * h_tilde
        hs.append(h)
    # Step 1 written out in full (h0 = 0): the recurrent h-bias is still gated by r.
    z1 = sig(1.5 * 0.1 + 0.01 - 0.04)
    r1 = sig(1.5 * 0.2 + 0.02 + 0.05)
    assert hs[0] == pytest.approx((1 - z1) * math.tanh(1.5 * 0.3 + 0.03 + r1 * -0.06), abs=1e-15)

    spec = CellSpec("gru", 1, reset_after=True)
    res = run_layer(spec, x_of(x1, x2),
                    np.array([[Wz, Wr, Wh]]),
                    np.array([[Uz, Ur, Uh]]),
                    np.array([[bin_z, bin_r, bin_h], [brec_z, brec_r, brec_h]]))
    close(res.sequence, [[[hs[0]], [hs[1]]]])
    close(res.states[0], [[hs[1]]])


def test_gru_reset_after_false_two_steps_by_hand():
    """GRU reset_after=False: h~ = tanh(x Wh + (r h) Uh + bh), one bias row."""
    Wz, Wr, Wh = 0.1, 0.2, 0.3
    Uz, Ur, Uh = 0.4, -0.5, 0.6
    bz, br, bh = 0.01, -0.02, 0.03
    x1, x2 = 1.5, -0.5

    h = 0.0
    hs = []
    for x in (x1, x2):
        z = sig(x * Wz + h * Uz + bz)
        r = sig(x * Wr + h * Ur + br)
        h_tilde = math.tanh(x * Wh + (r * h) * Uh + bh)
        h = z * h + (1.0 - z) * h_tilde
        hs.append(h)

    spec = CellSpec("gru", 1, reset_after=False)
    res = run_layer(spec, x_of(x1, x2),
                    np.array([[Wz, Wr, Wh]]),
                    np.array([[Uz, Ur, Uh]]),
                    np.array([bz, br, bh]))
    close(res.sequence, [[[hs[0]], [hs[1]]]])
    close(res.states[0], [[hs[1]]])


def test_gru_two_units_reset_placement_by_hand():
    """GRU with 2 units, one step from a nonzero h, both reset_after layouts.

    With one unit (r h) U and r (h U) coincide; with two they differ, so this
    pins where the reset gate acts:
      reset_after=False: h~_j = tanh(x Wh_j + sum_k (r_k h_k) U[k, 4+j] + bh_j)
      reset_after=True:  h~_j = tanh(x Wh_j + bin_h_j + r_j (sum_k h_k U[k, 4+j] + brec_h_j))
    Columns are [z1 z2 | r1 r2 | h1 h2].
    """
    x = 0.8
    h0 = [0.5, -0.3]
    W = [0.1, -0.2, 0.3, -0.4, 0.5, -0.6]
    U = [[0.15, -0.25, 0.35, -0.45, 0.55, -0.65],
         [-0.7, 0.6, -0.5, 0.4, -0.3, 0.2]]
    b_in = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06]
    b_rec = [-0.06, 0.05, -0.04, 0.03, -0.02, 0.01]

    def rec(col):                      # sum_k h_k U[k, col]
        return h0[0] * U[0][col] + h0[1] * U[1][col]

    for reset_after in (False, True):
        h_exp = []
        for j in range(2):
            if reset_after:
                z = sig(x * W[j] + b_in[j] + rec(j) + b_rec[j])
                r = sig(x * W[2 + j] + b_in[2 + j] + rec(2 + j) + b_rec[2 + j])
                h_t = math.tanh(x * W[4 + j] + b_in[4 + j] + r * (rec(4 + j) + b_rec[4 + j]))
            else:
                z = sig(x * W[j] + rec(j) + b_in[j])
                rs = [sig(x * W[2 + k] + rec(2 + k) + b_in[2 + k]) for k in range(2)]
                reset_rec = sum(rs[k] * h0[k] * U[k][4 + j] for k in range(2))
                h_t = math.tanh(x * W[4 + j] + reset_rec + b_in[4 + j])
            h_exp.append(z * h0[j] + (1.0 - z) * h_t)
        bias = np.array([b_in, b_rec]) if reset_after else np.array(b_in)
        spec = CellSpec("gru", 2, reset_after=reset_after)
        res = run_layer(spec, np.array([[[x]]]), np.array([W]), np.array(U), bias,
                        initial_state=(np.array([h0]),))
        close(res.states[0], [h_exp])


def test_gru_without_bias_by_hand():
    """GRU with bias=None (use_bias=False), both reset_after layouts: no bias terms at all."""
    Wz, Wr, Wh = 0.1, 0.2, 0.3
    Uz, Ur, Uh = 0.4, -0.5, 0.6
    x1, x2 = 1.5, -0.5
    for reset_after in (True, False):
        h = 0.0
        hs = []
        for x in (x1, x2):
            z = sig(x * Wz + h * Uz)
            r = sig(x * Wr + h * Ur)
            rec = r * (h * Uh) if reset_after else (r * h) * Uh   # equal without bias
            h_tilde = math.tanh(x * Wh + rec)
            h = z * h + (1.0 - z) * h_tilde
            hs.append(h)
        spec = CellSpec("gru", 1, reset_after=reset_after, use_bias=False)
        res = run_layer(spec, x_of(x1, x2), np.array([[Wz, Wr, Wh]]),
                        np.array([[Uz, Ur, Uh]]), None)
        close(res.sequence, [[[hs[0]], [hs[1]]]])


def test_masked_and_backward_simple_rnn_by_hand():
    """Mask [True, False, True] and go_backwards on a 3-step SimpleRNN, by hand.

    Forward, zero_output_for_mask=False: step 2 is skipped, so the output
    there repeats h1 and step 3 continues from h1.
    go_backwards (no mask): steps 3, 2, 1 in that order; sequence in
    processing order.
    """
    W, U, b = 0.7, -0.4, 0.1
    xs = (0.5, -1.0, 2.0)
    spec = CellSpec("simple_rnn", 1)
    weights = (np.array([[W]]), np.array([[U]]), np.array([b]))

    h1 = math.tanh(xs[0] * W + b)
    h3 = math.tanh(xs[2] * W + h1 * U + b)
    res = run_layer(spec, x_of(*xs), *weights, mask=[[True, False, True]])
    close(res.sequence, [[[h1], [h1], [h3]]])
    close(res.states[0], [[h3]])
    res0 = run_layer(spec, x_of(*xs), *weights, mask=[[True, False, True]],
                     zero_output_for_mask=True)
    close(res0.sequence, [[[h1], [0.0], [h3]]])

    # Masked first step: output zeros before the first unmasked step.
    g2 = math.tanh(xs[1] * W + b)
    res = run_layer(spec, x_of(*xs[:2]), *weights, mask=[[False, True]])
    close(res.sequence, [[[0.0], [g2]]])

    b3 = math.tanh(xs[2] * W + b)
    b2 = math.tanh(xs[1] * W + b3 * U + b)
    b1 = math.tanh(xs[0] * W + b2 * U + b)
    res = run_layer(spec, x_of(*xs), *weights, go_backwards=True)
    close(res.sequence, [[[b3], [b2], [b1]]])
    close(res.last_output, [[b1]])


def test_initial_state_is_zeros_per_state():
    """Default initial state: zeros, one array per state (LSTM: h and c)."""
    h, c = initial_state(CellSpec("lstm", 3), 2)
    assert h.shape == c.shape == (2, 3)
    assert not h.any() and not c.any()
    assert len(initial_state(CellSpec("gru", 3), 2)) == 1
    assert len(initial_state(CellSpec("simple_rnn", 3), 2)) == 1


def test_cell_spec_rejects_bad_arguments():
    """Unknown kinds and units < 1 raise ValueError."""
    with pytest.raises(ValueError):
        CellSpec("rnn", 1)
    with pytest.raises(ValueError):
        CellSpec("lstm", 0)


# ---------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------

# (x, keras2 = clip(0.2 x + 0.5, 0, 1), keras3 = clip(x / 6 + 0.5, 0, 1))
HARD_SIGMOID_TABLE = [
    (-3.0, 0.0, 0.0),                  # 0.2*-3+.5 = -0.1 -> 0;  -0.5+0.5 = 0
    (-1.0, 0.3, 1.0 / 3.0),            # -0.2+0.5 = 0.3;          -1/6+1/2 = 1/3
    (0.0, 0.5, 0.5),
    (1.0, 0.7, 2.0 / 3.0),             # 0.2+0.5 = 0.7;           1/6+1/2 = 2/3
    (2.5, 1.0, 11.0 / 12.0),           # 0.5+0.5 = 1.0;           2.5/6+1/2 = 11/12
    (3.0, 1.0, 1.0),                   # 1.1 -> 1;                0.5+0.5 = 1
    (-2.5, 0.0, 1.0 / 12.0),           # 0 exactly;               -5/12+6/12 = 1/12
]


@pytest.mark.parametrize("x, k2, k3", HARD_SIGMOID_TABLE)
def test_hard_sigmoid_conventions(x, k2, k3):
    """hard_sigmoid: keras2 is clip(0.2x+0.5), keras3 is clip(x/6+0.5)."""
    assert activation("hard_sigmoid", "keras2")(np.float64(x)) == pytest.approx(k2, abs=1e-15)
    assert activation("hard_sigmoid", "keras3")(np.float64(x)) == pytest.approx(k3, abs=1e-15)
    assert hard_sigmoid_keras2(x) == pytest.approx(k2, abs=1e-15)
    assert hard_sigmoid_keras3(x) == pytest.approx(k3, abs=1e-15)


def test_hard_sigmoid_defaults_to_keras3():
    """Without a convention, 'hard_sigmoid' is the Keras 3 one (1 -> 2/3, not 0.7)."""
    assert activation("hard_sigmoid")(1.0) == pytest.approx(2.0 / 3.0, abs=1e-15)


def test_plain_activations():
    """tanh, sigmoid, relu and linear by their Keras names."""
    xs = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    close(activation("tanh")(xs), [math.tanh(v) for v in xs])
    close(activation("sigmoid")(xs), [sig(v) for v in xs])
    close(activation("relu")(xs), [0.0, 0.0, 0.0, 0.5, 2.0])
    close(activation("linear")(xs), xs)
    assert set(ACTIVATION_NAMES) == {"tanh", "sigmoid", "relu", "linear", "hard_sigmoid"}


@pytest.mark.parametrize("name, conv", [
    ("swish", "keras3"), ("Tanh", "keras3"), ("", "keras3"), ("hard_sigmoid", "keras1"),
])
def test_unknown_activation_raises(name, conv):
    """Unknown activation names and unknown hard_sigmoid conventions raise ValueError."""
    with pytest.raises(ValueError):
        activation(name, conv)


def test_cell_spec_with_unknown_activation_raises_when_used():
    """A CellSpec with an unknown activation fails (ValueError) when its g is used."""
    spec = CellSpec("simple_rnn", 1, activation="swish")
    with pytest.raises(ValueError):
        spec.g


# ---------------------------------------------------------------------------
# Bidirectional merge modes
# ---------------------------------------------------------------------------

def _bidi_case():
    """Two independent 1-unit SimpleRNNs on x = (0.5, -1.0), by hand.

    forward (W, U, b) = (0.7, -0.4, 0.1):
      f1 = tanh(0.5*0.7 + 0.1) = tanh(0.45); f2 = tanh(-0.7 - 0.4 f1 + 0.1)
    backward (W, U, b) = (0.3, 0.9, -0.2), run from the last step:
      b_at1 = tanh(-1.0*0.3 - 0.2) = tanh(-0.5)
      b_at0 = tanh(0.5*0.3 + 0.9 b_at1 - 0.2)
    """
    f1 = math.tanh(0.5 * 0.7 + 0.1)
    f2 = math.tanh(-1.0 * 0.7 + f1 * -0.4 + 0.1)
    b_at1 = math.tanh(-1.0 * 0.3 - 0.2)
    b_at0 = math.tanh(0.5 * 0.3 + b_at1 * 0.9 - 0.2)
    fw_w = (np.array([[0.7]]), np.array([[-0.4]]), np.array([0.1]))
    bw_w = (np.array([[0.3]]), np.array([[0.9]]), np.array([-0.2]))
    return (f1, f2, b_at0, b_at1), fw_w, bw_w


@pytest.mark.parametrize("mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_merge_modes_sequences(mode):
    """return_sequences: position t merges forward h at t with backward h for input step t."""
    (f1, f2, b0, b1), fw_w, bw_w = _bidi_case()
    spec = CellSpec("simple_rnn", 1)
    out, fw_states, bw_states = run_bidirectional(spec, x_of(0.5, -1.0), fw_w, bw_w,
                                                  merge_mode=mode, return_sequences=True)
    fwd = [[[f1], [f2]]]
    bwd = [[[b0], [b1]]]
    expected = {
        "concat": [[[f1, b0], [f2, b1]]],
        "sum": [[[f1 + b0], [f2 + b1]]],
        "mul": [[[f1 * b0], [f2 * b1]]],
        "ave": [[[(f1 + b0) / 2], [(f2 + b1) / 2]]],
    }
    if mode is None:
        assert isinstance(out, list) and len(out) == 2
        close(out[0], fwd)
        close(out[1], bwd)
    else:
        close(out, expected[mode])
    close(fw_states[0], [[f2]])
    close(bw_states[0], [[b0]])


@pytest.mark.parametrize("mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_merge_modes_last_output(mode):
    """Without return_sequences: forward's last (step T-1) with backward's last (step 0)."""
    (f1, f2, b0, b1), fw_w, bw_w = _bidi_case()
    spec = CellSpec("simple_rnn", 1)
    out, _, _ = run_bidirectional(spec, x_of(0.5, -1.0), fw_w, bw_w, merge_mode=mode)
    expected = {
        "concat": [[f2, b0]],
        "sum": [[f2 + b0]],
        "mul": [[f2 * b0]],
        "ave": [[(f2 + b0) / 2]],
    }
    if mode is None:
        close(out[0], [[f2]])
        close(out[1], [[b0]])
    else:
        close(out, expected[mode])


def test_bidirectional_with_mask_by_hand():
    """Mask [True, False] on the two-step case.

    Forward: f1 at step 0; step 1 masked. Backward: step 1 masked first (state
    stays 0), then step 0 from zero state: tanh(0.5*0.3 - 0.2) = tanh(-0.05).
    return_sequences=True sets zero_output_for_mask on both halves, so the
    masked position is zeros in both; return_sequences=False merges the
    halves' last outputs (forward holds f1).
    """
    (f1, _, _, _), fw_w, bw_w = _bidi_case()
    g0 = math.tanh(0.5 * 0.3 - 0.2)
    spec = CellSpec("simple_rnn", 1)
    out, fw_states, bw_states = run_bidirectional(
        spec, x_of(0.5, -1.0), fw_w, bw_w, return_sequences=True, mask=[[True, False]])
    close(out, [[[f1, g0], [0.0, 0.0]]])
    close(fw_states[0], [[f1]])
    close(bw_states[0], [[g0]])
    out, _, _ = run_bidirectional(spec, x_of(0.5, -1.0), fw_w, bw_w, mask=[[True, False]])
    close(out, [[f1, g0]])


def test_unknown_merge_mode_raises():
    """An unknown merge_mode raises ValueError."""
    with pytest.raises(ValueError):
        merge(np.zeros((1, 1)), np.zeros((1, 1)), "max")
