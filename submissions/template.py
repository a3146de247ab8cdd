"""Homework 1: Backpropagation (theory): the functions to write.

Generated from the problem set 'hw1' by `grade template problems/hw1`. Keep the names and
the arguments. Arguments are NumPy float64 arrays (dimensions are int, scalars float);
return NumPy arrays of the shapes given, a tuple where several outputs are asked for.
Check your work with: grade <this file>
"""

import numpy as np


# --- 1.2 Two-layer network 'reg': f(z1) = 5 * relu(z1), yhat = z3, loss sum((yhat - y) ** 2) ---
# Sizes vary between trials: n in 1..6, h in 1..6, K in 1..4.


def reg_forward(x, W1, b1, W2, b2):
    """1.2 forward (1.2(b)).
    The forward pass z1 = W1 x + b1, z2 = f(z1), z3 = W2 z2 + b2, yhat = g(z3) of
    this network.

    Arguments:
        x: (n,)
        W1: (h, n)
        b1: (h,)
        W2: (K, h)
        b2: (K,)

    Returns a tuple (z1, z2, z3, yhat):
        z1: (h,)
        z2: (h,)
        z3: (K,)
        yhat: (K,)

    Points: 4
    """
    raise NotImplementedError


def reg_loss(yhat, y):
    """1.2 loss (1.2(a)).
    The loss of one example, from the prediction yhat and the target y.

    Arguments:
        yhat: (K,)
        y: (K,)

    Returns: scalar (a float)

    Points: 1
    """
    raise NotImplementedError


def reg_dl_dyhat(yhat, y):
    """1.2 dl/dyhat (1.2(d)).
    The gradient of the loss with respect to yhat.

    Arguments:
        yhat: (K,)
        y: (K,)

    Returns: (K,)

    Points: 1
    """
    raise NotImplementedError


def reg_dyhat_dz3(z3):
    """1.2 dyhat/dz3 (1.2(d)).
    The Jacobian d yhat / d z3, with J[i, j] = d yhat_i / d z3_j.

    Arguments:
        z3: (K,)

    Returns: (K, K)

    Points: 1
    """
    raise NotImplementedError


def reg_dz2_dz1(z1):
    """1.2 dz2/dz1 (1.2(d)).
    The Jacobian d z2 / d z1, with J[i, j] = d z2_i / d z1_j.

    Arguments:
        z1: (h,)

    Returns: (h, h)

    Points: 1
    """
    raise NotImplementedError


def reg_grads(x, y, W1, b1, W2, b2):
    """1.2 gradients (1.2(c)).
    The gradients of the loss with respect to W1, b1, W2 and b2, each of its
    parameter's shape.

    Arguments:
        x: (n,)
        y: (K,)
        W1: (h, n)
        b1: (h,)
        W2: (K, h)
        b2: (K,)

    Returns a tuple (dW1, db1, dW2, db2):
        dW1: (h, n)
        db1: (h,)
        dW2: (K, h)
        db2: (K,)

    Points: 8
    """
    raise NotImplementedError


def reg_sgd_step(x, y, W1, b1, W2, b2, lr):
    """1.2(a) SGD step.
    The parameters after one step of gradient descent on this example's loss.

    Arguments:
        x: (n,)
        y: (K,)
        W1: (h, n)
        b1: (h,)
        W2: (K, h)
        b2: (K,)
        lr: float

    Returns a tuple (W1, b1, W2, b2):
        W1: (h, n)
        b1: (h,)
        W2: (K, h)
        b2: (K,)

    Points: 4
    """
    raise NotImplementedError


# --- 1.3(a) Two-layer network 'mse': f(z1) = tanh(z1), yhat = sigmoid(z3), loss sum((yhat - y) ** 2) ---
# Sizes vary between trials: n in 1..6, h in 1..6, K in 1..4.


def mse_forward(x, W1, b1, W2, b2):
    """1.3(a) forward (1.2(b)).
    The forward pass z1 = W1 x + b1, z2 = f(z1), z3 = W2 z2 + b2, yhat = g(z3) of
    this network.

    Arguments:
        x: (n,)
        W1: (h, n)
        b1: (h,)
        W2: (K, h)
        b2: (K,)

    Returns a tuple (z1, z2, z3, yhat):
        z1: (h,)
        z2: (h,)
        z3: (K,)
        yhat: (K,)

    Points: 4
    """
    raise NotImplementedError


def mse_loss(yhat, y):
    """1.3(a) loss (1.2(a)).
    The loss of one example, from the prediction yhat and the target y.

    Arguments:
        yhat: (K,)
        y: (K,)

    Returns: scalar (a float)

    Points: 1
    """
    raise NotImplementedError


def mse_dl_dyhat(yhat, y):
    """1.3(a) dl/dyhat (1.2(d)).
    The gradient of the loss with respect to yhat.

    Arguments:
        yhat: (K,)
        y: (K,)

    Returns: (K,)

    Points: 1
    """
    raise NotImplementedError


def mse_dyhat_dz3(z3):
    """1.3(a) dyhat/dz3 (1.2(d)).
    The Jacobian d yhat / d z3, with J[i, j] = d yhat_i / d z3_j.

    Arguments:
        z3: (K,)

    Returns: (K, K)

    Points: 1
    """
    raise NotImplementedError


def mse_dz2_dz1(z1):
    """1.3(a) dz2/dz1 (1.2(d)).
    The Jacobian d z2 / d z1, with J[i, j] = d z2_i / d z1_j.

    Arguments:
        z1: (h,)

    Returns: (h, h)

    Points: 1
    """
    raise NotImplementedError


def mse_grads(x, y, W1, b1, W2, b2):
    """1.3(a) gradients (1.2(c)).
    The gradients of the loss with respect to W1, b1, W2 and b2, each of its
    parameter's shape.

    Arguments:
        x: (n,)
        y: (K,)
        W1: (h, n)
        b1: (h,)
        W2: (K, h)
        b2: (K,)

    Returns a tuple (dW1, db1, dW2, db2):
        dW1: (h, n)
        db1: (h,)
        dW2: (K, h)
        db2: (K,)

    Points: 8
    """
    raise NotImplementedError


# --- 1.3(b) Two-layer network 'bce': f(z1) = tanh(z1), yhat = sigmoid(z3), loss -mean(y * log(yhat) + (1 - y) * log(1 - yhat)) ---
# Sizes vary between trials: n in 1..6, h in 1..6, K in 1..4.


def bce_forward(x, W1, b1, W2, b2):
    """1.3(b) forward (1.2(b)).
    The forward pass z1 = W1 x + b1, z2 = f(z1), z3 = W2 z2 + b2, yhat = g(z3) of
    this network.

    Arguments:
        x: (n,)
        W1: (h, n)
        b1: (h,)
        W2: (K, h)
        b2: (K,)

    Returns a tuple (z1, z2, z3, yhat):
        z1: (h,)
        z2: (h,)
        z3: (K,)
        yhat: (K,)

    Points: 4
    """
    raise NotImplementedError


def bce_loss(yhat, y):
    """1.3(b) loss (1.2(a)).
    The loss of one example, from the prediction yhat and the target y.

    Arguments:
        yhat: (K,)
        y: (K,)

    Returns: scalar (a float)

    Points: 1
    """
    raise NotImplementedError


def bce_dl_dyhat(yhat, y):
    """1.3(b) dl/dyhat (1.2(d)).
    The gradient of the loss with respect to yhat.

    Arguments:
        yhat: (K,)
        y: (K,)

    Returns: (K,)

    Points: 1
    """
    raise NotImplementedError


def bce_dyhat_dz3(z3):
    """1.3(b) dyhat/dz3 (1.2(d)).
    The Jacobian d yhat / d z3, with J[i, j] = d yhat_i / d z3_j.

    Arguments:
        z3: (K,)

    Returns: (K, K)

    Points: 1
    """
    raise NotImplementedError


def bce_dz2_dz1(z1):
    """1.3(b) dz2/dz1 (1.2(d)).
    The Jacobian d z2 / d z1, with J[i, j] = d z2_i / d z1_j.

    Arguments:
        z1: (h,)

    Returns: (h, h)

    Points: 1
    """
    raise NotImplementedError


def bce_grads(x, y, W1, b1, W2, b2):
    """1.3(b) gradients (1.2(c)).
    The gradients of the loss with respect to W1, b1, W2 and b2, each of its
    parameter's shape.

    Arguments:
        x: (n,)
        y: (K,)
        W1: (h, n)
        b1: (h,)
        W2: (K, h)
        b2: (K,)

    Returns a tuple (dW1, db1, dW2, db2):
        dW1: (h, n)
        db1: (h,)
        dW2: (K, h)
        db2: (K,)

    Points: 8
    """
    raise NotImplementedError


def bce_dl_dz3(z3, y):
    """1.3(b) dl/dz3.
    The gradient of the BCE loss with respect to the logits z3 (it simplifies).

    Arguments:
        z3: (K,)
        y: (K,)

    Returns: (K,)

    Points: 2
    """
    raise NotImplementedError


# --- 1.3(c) Two-layer network 'relu_tanh': f(z1) = relu(z1), yhat = tanh(z3), loss sum((yhat - y) ** 2) ---
# Sizes vary between trials: n in 1..6, h in 1..6, K in 1..4.


def relu_tanh_forward(x, W1, b1, W2, b2):
    """1.3(c) forward (1.2(b)).
    The forward pass z1 = W1 x + b1, z2 = f(z1), z3 = W2 z2 + b2, yhat = g(z3) of
    this network.

    Arguments:
        x: (n,)
        W1: (h, n)
        b1: (h,)
        W2: (K, h)
        b2: (K,)

    Returns a tuple (z1, z2, z3, yhat):
        z1: (h,)
        z2: (h,)
        z3: (K,)
        yhat: (K,)

    Points: 4
    """
    raise NotImplementedError


def relu_tanh_loss(yhat, y):
    """1.3(c) loss (1.2(a)).
    The loss of one example, from the prediction yhat and the target y.

    Arguments:
        yhat: (K,)
        y: (K,)

    Returns: scalar (a float)

    Points: 1
    """
    raise NotImplementedError


def relu_tanh_dl_dyhat(yhat, y):
    """1.3(c) dl/dyhat (1.2(d)).
    The gradient of the loss with respect to yhat.

    Arguments:
        yhat: (K,)
        y: (K,)

    Returns: (K,)

    Points: 1
    """
    raise NotImplementedError


def relu_tanh_dyhat_dz3(z3):
    """1.3(c) dyhat/dz3 (1.2(d)).
    The Jacobian d yhat / d z3, with J[i, j] = d yhat_i / d z3_j.

    Arguments:
        z3: (K,)

    Returns: (K, K)

    Points: 1
    """
    raise NotImplementedError


def relu_tanh_dz2_dz1(z1):
    """1.3(c) dz2/dz1 (1.2(d)).
    The Jacobian d z2 / d z1, with J[i, j] = d z2_i / d z1_j.

    Arguments:
        z1: (h,)

    Returns: (h, h)

    Points: 1
    """
    raise NotImplementedError


def relu_tanh_grads(x, y, W1, b1, W2, b2):
    """1.3(c) gradients (1.2(c)).
    The gradients of the loss with respect to W1, b1, W2 and b2, each of its
    parameter's shape.

    Arguments:
        x: (n,)
        y: (K,)
        W1: (h, n)
        b1: (h,)
        W2: (K, h)
        b2: (K,)

    Returns a tuple (dW1, db1, dW2, db2):
        dW1: (h, n)
        db1: (h,)
        dW2: (K, h)
        db2: (K,)

    Points: 8
    """
    raise NotImplementedError


# --- 1.4 perceptron loss (yhat = sign(z)), graded up to a positive factor and a term free of (w, b) ---
# Sizes vary between trials: d in 1..6.


def perceptron_loss(w, b, x, y):
    """1.4 perceptron loss.
    The loss of one example (z = b + w . x) whose gradient descent gives w_i <- w_i
    + eta (y - yhat) x_i and b <- b + eta (y - yhat) for yhat = sign(z).

    Arguments:
        w: (d,)
        b: float
        x: (d,)
        y: float

    Returns: scalar (a float)

    Graded up to a positive factor and a term that does not depend on w, b.

    Points: 3
    """
    raise NotImplementedError


# --- 1.4 adaline loss (yhat = z), graded up to a positive factor and a term free of (w, b) ---
# Sizes vary between trials: d in 1..6.


def adaline_loss(w, b, x, y):
    """1.4 adaline loss.
    The loss of one example (z = b + w . x) whose gradient descent gives w_i <- w_i
    + eta (y - yhat) x_i and b <- b + eta (y - yhat) for yhat = z.

    Arguments:
        w: (d,)
        b: float
        x: (d,)
        y: float

    Returns: scalar (a float)

    Graded up to a positive factor and a term that does not depend on w, b.

    Points: 3
    """
    raise NotImplementedError


# --- 1.4 tanh_logistic loss (yhat = tanh(z)), graded up to a positive factor and a term free of (w, b) ---
# Sizes vary between trials: d in 1..6.


def tanh_logistic_loss(w, b, x, y):
    """1.4 tanh_logistic loss.
    The loss of one example (z = b + w . x) whose gradient descent gives w_i <- w_i
    + eta (y - yhat) x_i and b <- b + eta (y - yhat) for yhat = tanh(z).

    Arguments:
        w: (d,)
        b: float
        x: (d,)
        y: float

    Returns: scalar (a float)

    Graded up to a positive factor and a term that does not depend on w, b.

    Points: 3
    """
    raise NotImplementedError


# --- 1.5(a) Softargmax with inverse temperature beta ---
# Sizes vary between trials: m in 1..6.


def softargmax(z, beta):
    """1.5(a) softargmax.
    softmax(beta z) for a vector z; it must stay finite and correct for large beta z
    (beta = 1000).

    Arguments:
        z: (m,)
        beta: float

    Returns: (m,)

    Points: 2
    """
    raise NotImplementedError


# --- 1.5(b) Computational graph a = x·y + z, b = (x + x)·a, w = a·b ---


def graph_forward(x, y, z):
    """1.5(b) forward.
    The graph a = x y + z, b = (x + x) a, w = a b, for scalars x, y, z.

    Arguments:
        x: float
        y: float
        z: float

    Returns a tuple (a, b, w):
        a: scalar (a float)
        b: scalar (a float)
        w: scalar (a float)

    Points: 3
    """
    raise NotImplementedError


def graph_grads(x, y, z):
    """1.5(b) gradients.
    The derivatives dw/dx, dw/dy, dw/dz of the graph a = x y + z, b = (x + x) a, w =
    a b.

    Arguments:
        x: float
        y: float
        z: float

    Returns a tuple (dw_dx, dw_dy, dw_dz):
        dw_dx: scalar (a float)
        dw_dy: scalar (a float)
        dw_dz: scalar (a float)

    Points: 3
    """
    raise NotImplementedError


# --- 1.5(c) Element-wise derivative of relu ---
# Sizes vary between trials: p in 1..3, m in 1..4, n in 1..6.


def d_relu(x):
    """1.5(c) d_relu.
    The element-wise derivative of relu (section 1.5(c)), for an array of any shape.

    Arguments:
        x: (m, n)

    Returns: (m, n)

    Points: 1
    """
    raise NotImplementedError


# --- 1.5(c) Element-wise derivative of leaky_relu ---
# Sizes vary between trials: p in 1..3, m in 1..4, n in 1..6.


def d_leaky_relu(x):
    """1.5(c) d_leaky_relu.
    The element-wise derivative of leaky_relu (section 1.5(c)), for an array of any
    shape.

    Arguments:
        x: (n,)

    Returns: (n,)

    Points: 1
    """
    raise NotImplementedError


# --- 1.5(c) Element-wise derivative of softplus ---
# Sizes vary between trials: p in 1..3, m in 1..4, n in 1..6.


def d_softplus(x):
    """1.5(c) d_softplus.
    The element-wise derivative of softplus (section 1.5(c)), for an array of any
    shape.

    Arguments:
        x: (m, n)

    Returns: (m, n)

    Points: 1
    """
    raise NotImplementedError


# --- 1.5(c) Element-wise derivative of gelu ---
# Sizes vary between trials: p in 1..3, m in 1..4, n in 1..6.


def d_gelu(x):
    """1.5(c) d_gelu.
    The element-wise derivative of gelu (section 1.5(c)), for an array of any shape.

    Arguments:
        x: (p, m, n)

    Returns: (p, m, n)

    Points: 1
    """
    raise NotImplementedError


# --- 1.5(d) Linear transformations: scaling, rotation, reflection, shear, projection ---
# Sizes vary between trials: n in 1..6, r in 1..n.


def scaling(alpha, n):
    """1.5(d) scaling.
    The n x n scaling matrix alpha I_n.

    Arguments:
        alpha: float
        n: int

    Returns: (n, n)

    Points: 1
    """
    raise NotImplementedError


def rotation(theta):
    """1.5(d) rotation.
    The 2 x 2 matrix of the counter-clockwise rotation by theta.

    Arguments:
        theta: float

    Returns: (2, 2)

    Points: 1
    """
    raise NotImplementedError


def reflection(v):
    """1.5(d) reflection.
    The reflection I - 2 v v^T / (v^T v): the mirror across the hyperplane
    orthogonal to v.

    Arguments:
        v: (n,)

    Returns: (n, n)

    Points: 1
    """
    raise NotImplementedError


def shear(k):
    """1.5(d) shear.
    The shear matrix [[1, k], [0, 1]].

    Arguments:
        k: float

    Returns: (2, 2)

    Points: 1
    """
    raise NotImplementedError


def projection(U):
    """1.5(d) projection.
    The orthogonal projector onto the column span of U (U has full column rank).

    Arguments:
        U: (n, r)

    Returns: (n, n)

    Points: 2
    """
    raise NotImplementedError


# --- 1.5(e) The MSE objective over a data set and its gradients for a linear model ---
# Sizes vary between trials: N in 1..6, n in 1..6, K in 1..4.


def mse_objective(Yhat, Y):
    """1.5(e) MSE objective.
    The MSE objective (1/N) sum_i ||yhat_i - y_i||^2 over the N rows of Yhat and Y.

    Arguments:
        Yhat: (N, K)
        Y: (N, K)

    Returns: scalar (a float)

    Points: 1
    """
    raise NotImplementedError


def mse_objective_grads(X, Y, W, b):
    """1.5(e) MSE gradients.
    The gradients (dW, db) of the MSE objective of the linear model F(x) = W x + b
    over the rows of X and Y.

    Arguments:
        X: (N, n)
        Y: (N, K)
        W: (K, n)
        b: (K,)

    Returns a tuple (dW, db):
        dW: (K, n)
        db: (K,)

    Points: 4
    """
    raise NotImplementedError
