"""Example: the weight gradients transposed, dW = x dz^T instead of dz x^T.

The student writes dl/dW1 = x (dl/dz1)^T and dl/dW2 = z2 (dl/dz3)^T (the
"input times error" order of a row-vector convention), so both weight gradients
come out with shape (n, h) and (h, K) instead of the shapes of W1 and W2. It is
the same shared backward pass for all four networks, so every dW1 and dW2 fails;
the biases are right. reg_sgd_step then computes W1 - lr * dW1 with mismatched
shapes, which raises a broadcasting error (or silently broadcasts) as soon as h
and n differ, so all four of its outputs fail, the biases included: a crash loses
the whole tuple.

expected score: 82
expected failures: reg_grads -> dW1, reg_grads -> dW2, mse_grads -> dW1, mse_grads -> dW2, bce_grads -> dW1, bce_grads -> dW2, relu_tanh_grads -> dW1, relu_tanh_grads -> dW2, reg_sgd_step -> W1, reg_sgd_step -> b1, reg_sgd_step -> W2, reg_sgd_step -> b2
expected diagnosis: reg_grads -> dW1: the transpose of the expected matrix
"""

import numpy as np

GELU_C = np.sqrt(2.0 / np.pi)
GELU_A = 0.044715


# --- numerically stable building blocks ---------------------------------------------


def _sigmoid(z):
    """1 / (1 + exp(-z)) without overflow: exp is only ever taken of -|z|."""
    z = np.asarray(z, dtype=float)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softplus(z):
    """log(1 + exp(z)) without overflow."""
    return np.logaddexp(0.0, z)


def _relu(z):
    return np.maximum(z, 0.0)


# --- 1.2 and 1.3: the two-layer network ------------------------------------------------
# z1 = W1 x + b1, z2 = f(z1), z3 = W2 z2 + b2, yhat = g(z3). Back-propagation:
# dl/dz3 = g'(z3) * dl/dyhat, dl/dW2 = dl/dz3 z2^T, dl/db2 = dl/dz3,
# dl/dz1 = f'(z1) * (W2^T dl/dz3), dl/dW1 = dl/dz1 x^T, dl/db1 = dl/dz1.


def _forward(x, W1, b1, W2, b2, f, g):
    z1 = W1 @ x + b1
    z2 = f(z1)
    z3 = W2 @ z2 + b2
    return z1, z2, z3, g(z3)


def _backward(x, W2, z1, z2, dz3, df):
    dW2 = np.outer(z2, dz3)  # z2 dz3^T
    db2 = dz3.copy()
    dz1 = df(z1) * (W2.T @ dz3)
    dW1 = np.outer(x, dz1)  # x dz1^T
    return dW1, dz1, dW2, db2


# 1.2 regression: f = 5 ReLU, g = identity, loss = sum_k (yhat_k - y_k)^2

def _five_relu(z):
    return 5.0 * _relu(z)


def _d_five_relu(z):
    return 5.0 * (z > 0)


def _identity(z):
    return np.array(z, dtype=float)


def reg_forward(x, W1, b1, W2, b2):
    return _forward(x, W1, b1, W2, b2, _five_relu, _identity)


def reg_loss(yhat, y):
    return float(np.sum((yhat - y) ** 2))


def reg_dl_dyhat(yhat, y):
    return 2.0 * (yhat - y)


def reg_dyhat_dz3(z3):
    return np.eye(np.size(z3))


def reg_dz2_dz1(z1):
    return np.diag(_d_five_relu(z1))


def reg_grads(x, y, W1, b1, W2, b2):
    z1, z2, z3, yhat = reg_forward(x, W1, b1, W2, b2)
    dz3 = 2.0 * (yhat - y)  # the output layer is the identity
    return _backward(x, W2, z1, z2, dz3, _d_five_relu)


def reg_sgd_step(x, y, W1, b1, W2, b2, lr):
    dW1, db1, dW2, db2 = reg_grads(x, y, W1, b1, W2, b2)
    return W1 - lr * dW1, b1 - lr * db1, W2 - lr * dW2, b2 - lr * db2


# 1.3(a): f = tanh, g = sigmoid, loss = sum_k (yhat_k - y_k)^2

def _d_tanh(z):
    return 1.0 - np.tanh(z) ** 2


def _d_sigmoid(z):
    s = _sigmoid(z)
    return s * (1.0 - s)


def mse_forward(x, W1, b1, W2, b2):
    return _forward(x, W1, b1, W2, b2, np.tanh, _sigmoid)


def mse_loss(yhat, y):
    return float(np.sum((yhat - y) ** 2))


def mse_dl_dyhat(yhat, y):
    return 2.0 * (yhat - y)


def mse_dyhat_dz3(z3):
    return np.diag(_d_sigmoid(z3))


def mse_dz2_dz1(z1):
    return np.diag(_d_tanh(z1))


def mse_grads(x, y, W1, b1, W2, b2):
    z1, z2, z3, yhat = mse_forward(x, W1, b1, W2, b2)
    dz3 = 2.0 * (yhat - y) * _d_sigmoid(z3)
    return _backward(x, W2, z1, z2, dz3, _d_tanh)


# 1.3(b): f = tanh, g = sigmoid, loss = (1/K) sum_k -[y log yhat + (1 - y) log(1 - yhat)]

def bce_forward(x, W1, b1, W2, b2):
    return _forward(x, W1, b1, W2, b2, np.tanh, _sigmoid)


def bce_loss(yhat, y):
    return float(-np.mean(y * np.log(yhat) + (1.0 - y) * np.log1p(-yhat)))


def bce_dl_dyhat(yhat, y):
    return (yhat - y) / (yhat * (1.0 - yhat)) / np.size(yhat)


def bce_dyhat_dz3(z3):
    return np.diag(_d_sigmoid(z3))


def bce_dz2_dz1(z1):
    return np.diag(_d_tanh(z1))


def bce_dl_dz3(z3, y):
    # dl/dyhat * dyhat/dz3 simplifies: (yhat - y) / (yhat (1 - yhat)) * yhat (1 - yhat) / K
    return (_sigmoid(z3) - y) / np.size(z3)


def bce_grads(x, y, W1, b1, W2, b2):
    z1, z2, z3, _ = bce_forward(x, W1, b1, W2, b2)
    return _backward(x, W2, z1, z2, bce_dl_dz3(z3, y), _d_tanh)


# 1.3(c): f = ReLU, g = tanh, loss = sum_k (yhat_k - y_k)^2

def _d_relu(z):
    return (np.asarray(z) > 0).astype(float)


def relu_tanh_forward(x, W1, b1, W2, b2):
    return _forward(x, W1, b1, W2, b2, _relu, np.tanh)


def relu_tanh_loss(yhat, y):
    return float(np.sum((yhat - y) ** 2))


def relu_tanh_dl_dyhat(yhat, y):
    return 2.0 * (yhat - y)


def relu_tanh_dyhat_dz3(z3):
    return np.diag(_d_tanh(z3))


def relu_tanh_dz2_dz1(z1):
    return np.diag(_d_relu(z1))


def relu_tanh_grads(x, y, W1, b1, W2, b2):
    z1, z2, z3, yhat = relu_tanh_forward(x, W1, b1, W2, b2)
    dz3 = 2.0 * (yhat - y) * _d_tanh(z3)
    return _backward(x, W2, z1, z2, dz3, _d_relu)


# --- 1.4: losses derived from update rules (z = b + w^T x) -------------------------------


def perceptron_loss(w, b, x, y):
    # d/dw max(0, -y z) = -y x when misclassified: w <- w + eta y x = w + eta (y - yhat) x / 2
    return float(max(0.0, -y * (b + w @ x)))


def adaline_loss(w, b, x, y):
    return float(0.5 * (y - (b + w @ x)) ** 2)


def tanh_logistic_loss(w, b, x, y):
    # ln cosh z - y z, with ln cosh z = |z| + log(1 + exp(-2|z|)) - ln 2 (no overflow)
    z = b + w @ x
    a = abs(z)
    return float(a + np.log1p(np.exp(-2.0 * a)) - np.log(2.0) - y * z)


# --- 1.5: conceptual questions -------------------------------------------------------


def softargmax(z, beta=1.0):
    s = beta * np.asarray(z, dtype=float)
    e = np.exp(s - np.max(s))  # the largest exponent is 0: no overflow, no 0/0
    return e / np.sum(e)


def graph_forward(x, y, z):
    a = x * y + z
    b = (x + x) * a
    w = a * b
    return a, b, w


def graph_grads(x, y, z):
    # w = a b = 2 x a^2 with a = x y + z
    a = x * y + z
    dw_da = 4.0 * x * a  # through b = 2 x a and directly: a * 2x + b
    dw_dx = 2.0 * a * a + dw_da * y
    dw_dy = dw_da * x
    dw_dz = dw_da
    return dw_dx, dw_dy, dw_dz


def d_relu(x):
    return (np.asarray(x) > 0).astype(float)


def d_leaky_relu(x):
    return np.where(np.asarray(x) > 0, 1.0, 0.01)


def d_softplus(x):
    return _sigmoid(x)


def d_gelu(x):
    x = np.asarray(x, dtype=float)
    t = np.tanh(GELU_C * (x + GELU_A * x ** 3))
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * GELU_A * x * x)


def scaling(alpha, n):
    return alpha * np.eye(n)


def rotation(theta):
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def reflection(v):
    v = np.asarray(v, dtype=float)
    return np.eye(v.size) - 2.0 * np.outer(v, v) / (v @ v)


def shear(k):
    return np.array([[1.0, k], [0.0, 1.0]])


def projection(U):
    # U (U^T U)^-1 U^T through a linear solve rather than an explicit inverse
    return U @ np.linalg.solve(U.T @ U, U.T)


def mse_objective(Yhat, Y):
    return float(np.sum((Yhat - Y) ** 2) / Yhat.shape[0])


def mse_objective_grads(X, Y, W, b):
    N = X.shape[0]
    R = X @ W.T + b - Y  # (N, K) residuals F(x_i) - y_i
    dW = 2.0 / N * R.T @ X
    db = 2.0 / N * R.sum(axis=0)
    return dW, db
