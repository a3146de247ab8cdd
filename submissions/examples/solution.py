"""Full-marks solution (section 1.2 so far): the reference every example is compared with.

expected score: all
"""

import numpy as np


def reg_forward(x, W1, b1, W2, b2):
    z1 = W1 @ x + b1
    z2 = 5.0 * np.maximum(z1, 0.0)
    z3 = W2 @ z2 + b2
    return z1, z2, z3, z3


def reg_loss(yhat, y):
    return float(np.sum((yhat - y) ** 2))


def reg_dl_dyhat(yhat, y):
    return 2.0 * (yhat - y)


def reg_dyhat_dz3(z3):
    return np.eye(z3.shape[0])


def reg_dz2_dz1(z1):
    return np.diag(5.0 * (z1 > 0))


def reg_grads(x, y, W1, b1, W2, b2):
    z1, z2, z3, yhat = reg_forward(x, W1, b1, W2, b2)
    dz3 = reg_dl_dyhat(yhat, y)            # (K,), the output layer is the identity
    dW2 = np.outer(dz3, z2)                # (K, h)
    db2 = dz3
    dz1 = reg_dz2_dz1(z1) @ (W2.T @ dz3)   # (h,)
    dW1 = np.outer(dz1, x)                 # (h, n)
    return dW1, dz1, dW2, db2


def reg_sgd_step(x, y, W1, b1, W2, b2, lr):
    dW1, db1, dW2, db2 = reg_grads(x, y, W1, b1, W2, b2)
    return W1 - lr * dW1, b1 - lr * db1, W2 - lr * dW2, b2 - lr * db2
