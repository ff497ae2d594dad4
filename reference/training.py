"""One training step of the model "recurrent layer + Dense head", in float64.

The article trains its models with ``model.compile(optimizer=..., loss="mse")``
and ``model.fit``. What one step of plain SGD (no momentum) does, written out:

    prediction  y_hat = h W_d + b_d                  (Dense, linear, on the last axis)
    loss        L = mean((y_hat - y)^2)              (mean_squared_error: the mean over the
                                                      last axis, then over the batch and time)
    gradient    dL/dy_hat = 2 (y_hat - y) / N        (N = the number of entries of y_hat)
                dL/dW_d = h^T dL/dy_hat,   dL/db_d = sum of dL/dy_hat,
                dL/dh = dL/dy_hat W_d^T              (then backpropagation through time:
                                                      reference/gradients.py)
    update      w <- w - learning_rate * dL/dw       (every trainable weight)
"""

import numpy as np


def dense(h, kernel, bias):
    """``h @ kernel + bias`` on the last axis of ``h`` ((batch, units) or (batch, time, units))."""
    return np.asarray(h, np.float64) @ np.asarray(kernel, np.float64) + np.asarray(bias, np.float64)


def mean_squared_error(prediction, target):
    """The mean of ``(prediction - target)^2`` over every entry."""
    return float(np.mean((np.asarray(prediction, np.float64) - np.asarray(target, np.float64)) ** 2))


def mean_squared_error_gradient(prediction, target):
    """dL/d prediction for :func:`mean_squared_error`: ``2 (prediction - target) / N``."""
    diff = np.asarray(prediction, np.float64) - np.asarray(target, np.float64)
    return 2.0 * diff / diff.size


def dense_gradients(h, kernel, d_prediction):
    """``(dL/dkernel, dL/dbias, dL/dh)`` of the Dense head, summed over batch (and time)."""
    h = np.asarray(h, np.float64)
    d_prediction = np.asarray(d_prediction, np.float64)
    flat_h = h.reshape(-1, h.shape[-1])
    flat_d = d_prediction.reshape(-1, d_prediction.shape[-1])
    return flat_h.T @ flat_d, flat_d.sum(axis=0), d_prediction @ np.asarray(kernel, np.float64).T


def sgd_step(weights, gradients, learning_rate):
    """Plain SGD (no momentum, no weight decay): ``w - learning_rate * dL/dw`` for each weight."""
    return [np.asarray(w, np.float64) - learning_rate * np.asarray(g, np.float64)
            for w, g in zip(weights, gradients)]
