"""Homework 1, written answers turned into code: a realistic, mostly right submission.

This is the demo for `grade submissions/student.py`. It has the slips students
really make: a Jacobian of the identity written as a vector, a gradient that
forgets the factor 5 of 5*ReLU, and a column vector where a vector was asked.
"""

import numpy as np


def reg_forward(x, W1, b1, W2, b2):
    z1 = W1 @ x + b1
    z2 = 5 * np.maximum(z1, 0)
    z3 = W2 @ z2 + b2
    yhat = z3
    return z1, z2, z3, yhat


def reg_loss(yhat, y):
    return np.sum((yhat - y) ** 2)


def reg_dl_dyhat(yhat, y):
    # written as a column, as on paper: accepted with a warning
    return (2 * (yhat - y)).reshape(-1, 1)


def reg_dyhat_dz3(z3):
    # the output layer is the identity, so the derivative is "1" ... for every element
    return np.ones_like(z3)


def reg_dz2_dz1(z1):
    return np.diag(5 * (z1 > 0).astype(float))


def reg_grads(x, y, W1, b1, W2, b2):
    z1, z2, z3, yhat = reg_forward(x, W1, b1, W2, b2)
    d3 = 2 * (yhat - y)
    dW2 = np.outer(d3, z2)
    db2 = d3
    d1 = (W2.T @ d3) * (z1 > 0)   # forgot the 5 of 5*ReLU
    dW1 = np.outer(d1, x)
    db1 = d1
    return dW1, db1, dW2, db2


def reg_sgd_step(x, y, W1, b1, W2, b2, lr):
    dW1, db1, dW2, db2 = reg_grads(x, y, W1, b1, W2, b2)
    return W1 - lr * dW1, b1 - lr * db1, W2 - lr * dW2, b2 - lr * db2
