"""Example: a correct submission written very differently from the reference.

Every answer is right, only its form is unusual, so it must get full marks. It
checks that the grader judges values, not the way they are computed or packaged:

- tuples returned as lists; a column vector (K, 1) for relu_tanh_dl_dyhat
  (accepted, with a warning); scalars as NumPy scalars or 0-d arrays;
- Jacobians built with np.diagflat and the gradients of the regression network
  chained through those Jacobian matrices, not element-wise;
- the sigmoid written as (1 + tanh(z / 2)) / 2, stable at |z| = 800;
- the BCE gradient dl/dyhat in the form of the first student,
  (1/K)(-y / yhat + (1 - y) / (1 - yhat)), and dl/dz3 = (yhat - y) / K;
- 1.4 losses in equivalent forms: |z| - y z = 2 max(0, -y z) for the perceptron,
  z^2 - 2 y z = (y - z)^2 - y^2 for ADALINE, and the second student's
  -1/2 [(1 + y) ln(1 + yhat) + (1 - y) ln(1 - yhat)] for the tanh-logistic model;
- softargmax through a log-sum-exp, graph gradients from the expanded polynomial
  w = 2 x (x y + z)^2, d_relu through np.heaviside, the GELU derivative through
  sech^2 = 1 / cosh^2, the rotation from e^{i theta}, the projection from a QR
  factorization, and the MSE gradients accumulated example by example.

expected score: all
"""

import numpy as np


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=float)))


# ---------------- 1.2 regression: 5 ReLU, identity output ----------------

def reg_forward(x, W1, b1, W2, b2):
    z1 = np.dot(W1, x) + b1
    z2 = 5 * np.where(z1 > 0, z1, 0.0)
    z3 = np.dot(W2, z2) + b2
    return [z1, z2, z3, z3.copy()]


def reg_loss(yhat, y):
    r = yhat - y
    return r @ r


def reg_dl_dyhat(yhat, y):
    return 2 * yhat - 2 * y


def reg_dyhat_dz3(z3):
    return np.diagflat(np.ones_like(z3))


def reg_dz2_dz1(z1):
    return np.diagflat(np.where(z1 > 0, 5.0, 0.0))


def reg_grads(x, y, W1, b1, W2, b2):
    z1, z2, z3, yhat = reg_forward(x, W1, b1, W2, b2)
    # chain rule with full Jacobians: dl/dz = J^T dl/d(next)
    dl_dz3 = reg_dyhat_dz3(z3).T @ reg_dl_dyhat(yhat, y)
    dl_dz2 = W2.T @ dl_dz3
    dl_dz1 = reg_dz2_dz1(z1).T @ dl_dz2
    return [dl_dz1[:, None] * x[None, :], dl_dz1, dl_dz3[:, None] * z2[None, :], dl_dz3]


def reg_sgd_step(x, y, W1, b1, W2, b2, lr):
    grads = reg_grads(x, y, W1, b1, W2, b2)
    new = [p.copy() for p in (W1, b1, W2, b2)]
    for p, g in zip(new, grads):
        p -= lr * g
    return new


# ---------------- 1.3(a): tanh hidden, sigmoid output, squared error ----------------

def mse_forward(x, W1, b1, W2, b2):
    z1 = W1 @ x + b1
    z2 = np.tanh(z1)
    z3 = W2 @ z2 + b2
    return [z1, z2, z3, sigmoid(z3)]


def mse_loss(yhat, y):
    return np.array(np.sum(np.square(yhat - y)))


def mse_dl_dyhat(yhat, y):
    return -2 * (y - yhat)


def mse_dyhat_dz3(z3):
    s = sigmoid(z3)
    return np.diagflat(s - s * s)


def mse_dz2_dz1(z1):
    return np.diagflat(1 / np.cosh(z1) ** 2)


def mse_grads(x, y, W1, b1, W2, b2):
    z1, z2, z3, yhat = mse_forward(x, W1, b1, W2, b2)
    d3 = 2 * (yhat - y) * yhat * (1 - yhat)
    d1 = (d3 @ W2) * (1 - z2 ** 2)
    return [np.outer(d1, x), d1, np.outer(d3, z2), d3]


# ---------------- 1.3(b): binary cross-entropy, mean over K ----------------

def bce_forward(x, W1, b1, W2, b2):
    return mse_forward(x, W1, b1, W2, b2)


def bce_loss(yhat, y):
    per_output = np.where(y == 1, -np.log(yhat), -np.log(1 - yhat))
    return per_output.mean()


def bce_dl_dyhat(yhat, y):
    K = len(yhat)
    return (-y / yhat + (1 - y) / (1 - yhat)) / K


def bce_dyhat_dz3(z3):
    return mse_dyhat_dz3(z3)


def bce_dz2_dz1(z1):
    return mse_dz2_dz1(z1)


def bce_dl_dz3(z3, y):
    return (sigmoid(z3) - y) / len(z3)


def bce_grads(x, y, W1, b1, W2, b2):
    z1, z2, z3, _ = bce_forward(x, W1, b1, W2, b2)
    d3 = bce_dl_dz3(z3, y)
    d1 = (d3 @ W2) * (1 - z2 ** 2)
    return [np.outer(d1, x), d1, np.outer(d3, z2), d3]


# ---------------- 1.3(c): ReLU hidden, tanh output ----------------

def relu_tanh_forward(x, W1, b1, W2, b2):
    z1 = W1 @ x + b1
    z2 = z1 * (z1 > 0)
    z3 = W2 @ z2 + b2
    return [z1, z2, z3, np.tanh(z3)]


def relu_tanh_loss(yhat, y):
    return np.linalg.norm(yhat - y) ** 2


def relu_tanh_dl_dyhat(yhat, y):
    return 2 * (yhat - y).reshape(-1, 1)  # as a column, the way it is written on paper


def relu_tanh_dyhat_dz3(z3):
    return np.diagflat(1 - np.tanh(z3) ** 2)


def relu_tanh_dz2_dz1(z1):
    return np.diagflat(np.heaviside(z1, 0.0))


def relu_tanh_grads(x, y, W1, b1, W2, b2):
    z1, z2, z3, yhat = relu_tanh_forward(x, W1, b1, W2, b2)
    d3 = 2 * (yhat - y) * (1 - yhat ** 2)
    d1 = np.heaviside(z1, 0.0) * (W2.T @ d3)
    return [np.outer(d1, x), d1, np.outer(d3, z2), d3]


# ---------------- 1.4: losses from update rules ----------------

def perceptron_loss(w, b, x, y):
    z = b + np.dot(w, x)
    return np.abs(z) - y * z  # = 2 max(0, -y z) for y = +-1


def adaline_loss(w, b, x, y):
    z = b + np.dot(w, x)
    return z * z - 2 * y * z  # (y - z)^2 without the constant y^2


def tanh_logistic_loss(w, b, x, y):
    yhat = np.tanh(b + np.dot(w, x))
    return -0.5 * ((1 + y) * np.log(1 + yhat) + (1 - y) * np.log(1 - yhat))


# ---------------- 1.5 ----------------

def softargmax(z, beta=1.0):
    s = beta * np.asarray(z, dtype=float)
    return np.exp(s - np.logaddexp.reduce(s))


def graph_forward(x, y, z):
    a = x * y + z
    b = 2 * x * a
    return [a, b, a * b]


def graph_grads(x, y, z):
    # w = 2 x (x y + z)^2
    a = x * y + z
    return [2 * a ** 2 + 4 * x * y * a, 4 * x ** 2 * a, 4 * x * a]


def d_relu(x):
    return np.heaviside(x, 0.0)


def d_leaky_relu(x):
    return np.where(np.asarray(x) < 0, 0.01, 1.0)


def d_softplus(x):
    return sigmoid(x)


def d_gelu(x):
    x = np.asarray(x, dtype=float)
    c = np.sqrt(2 / np.pi)
    u = c * (x + 0.044715 * x ** 3)
    with np.errstate(over="ignore"):
        sech2 = 1.0 / np.cosh(u) ** 2  # cosh overflows to inf for large |u|: sech^2 = 0
    return 0.5 * (1 + np.tanh(u)) + 0.5 * x * sech2 * c * (1 + 3 * 0.044715 * x ** 2)


def scaling(alpha, n):
    return np.diag(np.full(n, float(alpha)))


def rotation(theta):
    e = np.exp(1j * theta)
    return np.array([[e.real, -e.imag], [e.imag, e.real]])


def reflection(v):
    u = v / np.linalg.norm(v)
    return np.identity(len(v)) - 2 * np.outer(u, u)


def shear(k):
    return np.eye(2) + k * np.eye(2, k=1)


def projection(U):
    Q, _ = np.linalg.qr(U)  # orthonormal basis of the column span
    return Q @ Q.T


def mse_objective(Yhat, Y):
    return np.mean(np.sum((Yhat - Y) ** 2, axis=1))


def mse_objective_grads(X, Y, W, b):
    N = len(X)
    dW, db = np.zeros_like(W), np.zeros_like(b)
    for x_i, y_i in zip(X, Y):
        r = W @ x_i + b - y_i
        dW += 2 * np.outer(r, x_i) / N
        db += 2 * r / N
    return [dW, db]
