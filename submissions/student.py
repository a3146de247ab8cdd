"""Homework 1 (backprop theory), my written answers turned into code.

This is the demo for `grade submissions/student.py`: a realistic, mostly right
submission with the slips students really make, one or two per section:

- 1.2(d) reg_dyhat_dz3: g is the identity, so the Jacobian is "all ones" ... the
  vector of ones, not the identity matrix I_K;
- 1.2(c) reg_grads forgets the factor 5 of f = 5 ReLU when going back through f
  (reg_dz2_dz1 has it right), so dW1, db1 and the SGD step on W1, b1 are off by 5;
- 1.4 perceptron_loss is the SVM hinge max(0, 1 - y z), not max(0, -y z);
- 1.5(a) softargmax without subtracting the maximum: NaN at beta = 1000;
- 1.5(e) mse_objective_grads returns dW transposed, X^T R of shape (n, K);
- and reg_dl_dyhat returns a column (K, 1): accepted, with a warning.

expected score: 88
expected failures: reg_dyhat_dz3, reg_grads -> dW1, reg_grads -> db1, reg_sgd_step -> W1, reg_sgd_step -> b1, perceptron_loss, softargmax, mse_objective_grads -> dW
"""

import numpy as np


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


# ===================== 1.2 regression: f = 5 ReLU, g = identity =====================

def reg_forward(x, W1, b1, W2, b2):
    z1 = W1 @ x + b1
    z2 = 5 * np.maximum(z1, 0)
    z3 = W2 @ z2 + b2
    yhat = z3  # g is the identity
    return z1, z2, z3, yhat


def reg_loss(yhat, y):
    return np.sum((yhat - y) ** 2)


def reg_dl_dyhat(yhat, y):
    # written as a column, like on paper
    return (2 * (yhat - y)).reshape(-1, 1)


def reg_dyhat_dz3(z3):
    # output layer is the identity so the derivative is 1 for every element
    return np.ones_like(z3)


def reg_dz2_dz1(z1):
    # 5 * ReLU'(z1) on the diagonal
    return np.diag(5 * (z1 > 0).astype(float))


def reg_grads(x, y, W1, b1, W2, b2):
    z1, z2, z3, yhat = reg_forward(x, W1, b1, W2, b2)
    d3 = 2 * (yhat - y)              # dl/dz3 (g' = 1)
    dW2 = np.outer(d3, z2)
    db2 = d3
    d1 = (W2.T @ d3) * (z1 > 0)      # back through f: ReLU'(z1)
    dW1 = np.outer(d1, x)
    db1 = d1
    return dW1, db1, dW2, db2


def reg_sgd_step(x, y, W1, b1, W2, b2, lr):
    # forward, loss, zero grad, backward, step: here just the last three by hand
    dW1, db1, dW2, db2 = reg_grads(x, y, W1, b1, W2, b2)
    return W1 - lr * dW1, b1 - lr * db1, W2 - lr * dW2, b2 - lr * db2


# ===================== 1.3(a): f = tanh, g = sigmoid, squared error =====================

def mse_forward(x, W1, b1, W2, b2):
    z1 = W1 @ x + b1
    z2 = np.tanh(z1)
    z3 = W2 @ z2 + b2
    return z1, z2, z3, sigmoid(z3)


def mse_loss(yhat, y):
    return np.sum((yhat - y) ** 2)


def mse_dl_dyhat(yhat, y):
    return 2 * (yhat - y)


def mse_dyhat_dz3(z3):
    s = sigmoid(z3)
    return np.diag(s * (1 - s))


def mse_dz2_dz1(z1):
    return np.diag(1 - np.tanh(z1) ** 2)


def mse_grads(x, y, W1, b1, W2, b2):
    z1, z2, z3, yhat = mse_forward(x, W1, b1, W2, b2)
    d3 = 2 * (yhat - y) * yhat * (1 - yhat)   # sigma' = sigma (1 - sigma)
    d1 = (W2.T @ d3) * (1 - z2 ** 2)          # tanh' = 1 - tanh^2
    return np.outer(d1, x), d1, np.outer(d3, z2), d3


# ===================== 1.3(b): binary cross-entropy (mean over K) =====================

def bce_forward(x, W1, b1, W2, b2):
    return mse_forward(x, W1, b1, W2, b2)  # same network


def bce_loss(yhat, y):
    return -np.mean(y * np.log(yhat) + (1 - y) * np.log(1 - yhat))


def bce_dl_dyhat(yhat, y):
    K = len(yhat)
    return (1 / K) * (-y / yhat + (1 - y) / (1 - yhat))


def bce_dyhat_dz3(z3):
    s = sigmoid(z3)
    return np.diag(s * (1 - s))


def bce_dz2_dz1(z1):
    return np.diag(1 - np.tanh(z1) ** 2)


def bce_dl_dz3(z3, y):
    # the yhat(1 - yhat) cancels: dl/dz3 = (yhat - y) / K
    return (sigmoid(z3) - y) / len(z3)


def bce_grads(x, y, W1, b1, W2, b2):
    z1, z2, z3, yhat = bce_forward(x, W1, b1, W2, b2)
    d3 = bce_dl_dz3(z3, y)
    d1 = (W2.T @ d3) * (1 - z2 ** 2)
    return np.outer(d1, x), d1, np.outer(d3, z2), d3


# ===================== 1.3(c): f = ReLU, g = tanh =====================

def relu_tanh_forward(x, W1, b1, W2, b2):
    z1 = W1 @ x + b1
    z2 = np.maximum(z1, 0)
    z3 = W2 @ z2 + b2
    return z1, z2, z3, np.tanh(z3)


def relu_tanh_loss(yhat, y):
    return np.sum((yhat - y) ** 2)


def relu_tanh_dl_dyhat(yhat, y):
    return 2 * (yhat - y)


def relu_tanh_dyhat_dz3(z3):
    return np.diag(1 - np.tanh(z3) ** 2)


def relu_tanh_dz2_dz1(z1):
    return np.diag((z1 > 0).astype(float))


def relu_tanh_grads(x, y, W1, b1, W2, b2):
    z1, z2, z3, yhat = relu_tanh_forward(x, W1, b1, W2, b2)
    d3 = 2 * (yhat - y) * (1 - yhat ** 2)
    d1 = (W2.T @ d3) * (z1 > 0)
    return np.outer(d1, x), d1, np.outer(d3, z2), d3


# ===================== 1.4 losses from the update rules, z = b + w^T x =====================

def perceptron_loss(w, b, x, y):
    # only update when the margin is too small
    z = b + w @ x
    return max(0, 1 - y * z)


def adaline_loss(w, b, x, y):
    z = b + w @ x
    return 0.5 * (y - z) ** 2


def tanh_logistic_loss(w, b, x, y):
    # dL/dz = tanh(z) - y  ->  L = ln cosh z - y z
    z = b + w @ x
    return np.log(np.cosh(z)) - y * z


# ===================== 1.5 conceptual =====================

def softargmax(z, beta=1.0):
    e = np.exp(beta * z)
    return e / np.sum(e)


def graph_forward(x, y, z):
    a = x * y + z
    b = (x + x) * a
    w = a * b
    return a, b, w


def graph_grads(x, y, z):
    a, b, w = graph_forward(x, y, z)
    dw_da = b + a * 2 * x          # w = a b, and b depends on a too
    dw_db = a
    dw_dx = dw_da * y + dw_db * 2 * a   # x goes into a and into b
    dw_dy = dw_da * x
    dw_dz = dw_da
    return dw_dx, dw_dy, dw_dz


def d_relu(x):
    return (x > 0).astype(float)


def d_leaky_relu(x):
    return np.where(x > 0, 1.0, 0.01)


def d_softplus(x):
    # softplus' = sigmoid
    return sigmoid(x)


def d_gelu(x):
    c = np.sqrt(2 / np.pi)
    u = c * (x + 0.044715 * x ** 3)
    t = np.tanh(u)
    # product rule on 0.5 x (1 + tanh u)
    return 0.5 * (1 + t) + 0.5 * x * (1 - t ** 2) * c * (1 + 3 * 0.044715 * x ** 2)


def scaling(alpha, n):
    return alpha * np.eye(n)


def rotation(theta):
    return np.array([[np.cos(theta), -np.sin(theta)],
                     [np.sin(theta), np.cos(theta)]])


def reflection(v):
    return np.eye(len(v)) - 2 * np.outer(v, v) / (v @ v)


def shear(k):
    return np.array([[1, k], [0, 1]])


def projection(U):
    return U @ np.linalg.inv(U.T @ U) @ U.T


def mse_objective(Yhat, Y):
    N = Yhat.shape[0]
    return np.sum((Yhat - Y) ** 2) / N


def mse_objective_grads(X, Y, W, b):
    N = X.shape[0]
    R = X @ W.T + b - Y            # residuals, (N, K)
    dW = 2 / N * X.T @ R
    db = 2 / N * np.sum(R, axis=0)
    return dW, db
