"""Closed-form bilevel problems and their exact hypergradients, to prove and measure estimators.

Each problem has a lower loss ``L(w, theta)``, an upper loss ``F(w, theta)``, and analytic
formulas for the lower optimum ``w*(theta)``, the lower Hessian ``H`` and mixed partials
``J = d2L/(dw dtheta)``, hence the exact hypergradient

    dF/dtheta = dF/dtheta|_direct - J^T H^{-1} dF/dw            (implicit function theorem)

and the exact Jacobian of K optimizer steps (forward recursion ``D_{k+1} = (I - lr H) D_k -
lr J``, independent of autograd), for the ``unrolled`` estimator.

- :class:`Ridge` (a): ridge regression; the upper variable is the L2 weight ``lambda``.
- :class:`Quadratic` (b): ``L = 1/2 w^T H w - w^T (B theta + c)`` with a random SPD ``H`` of a
  chosen condition number, and a linear upper loss ``F = a^T w``.
- :class:`Chain` (c): three levels ``a <- c``, ``b <- a``, top ``c``: Betty's multi-level path
  composition (paths ``[top, mid, bottom, top]`` and ``[top, bottom, top]``).

Plain tensors only: :mod:`metamask.testing.closed_form_graphs` builds these problems as
metamask nodes wired in a :class:`~metamask.graph.GraphEngine`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Tensor = torch.Tensor
DTYPE = torch.float64


def spd_matrix(n: int, condition: float, generator: torch.Generator) -> Tensor:
    """A random symmetric positive definite n x n matrix with eigenvalues in [1, condition]."""
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=DTYPE))
    eig = torch.logspace(0, torch.log10(torch.tensor(condition)).item(), n, dtype=DTYPE)
    return (q * eig) @ q.T


# ----------------------------------------------------------------------------------------------
# the problems: losses and closed forms
# ----------------------------------------------------------------------------------------------


@dataclass
class Ridge:
    """(a) ``L = ||X w - y||^2 / (2m) + lambda ||w||^2 / 2``, ``F = ||Xv w - yv||^2 / (2mv)``."""

    x: Tensor
    y: Tensor
    x_val: Tensor
    y_val: Tensor
    name: str = "ridge"

    @classmethod
    def make(cls, n: int = 8, m: int = 40, seed: int = 0) -> Ridge:
        g = torch.Generator().manual_seed(seed)
        w_true = torch.randn(n, generator=g, dtype=DTYPE)
        x = torch.randn(m, n, generator=g, dtype=DTYPE)
        x_val = torch.randn(m, n, generator=g, dtype=DTYPE)
        y = x @ w_true + 0.5 * torch.randn(m, generator=g, dtype=DTYPE)
        y_val = x_val @ w_true + 0.5 * torch.randn(m, generator=g, dtype=DTYPE)
        return cls(x, y, x_val, y_val)

    @property
    def sizes(self) -> tuple[int, int]:
        """(lower dimension, upper dimension)."""
        return self.x.shape[1], 1

    def theta0(self) -> Tensor:
        return torch.tensor([0.3], dtype=DTYPE)

    def lower_loss(self, w: Tensor, theta: Tensor) -> Tensor:
        r = self.x @ w - self.y
        return r @ r / (2 * len(self.y)) + 0.5 * theta[0] * (w @ w)

    def upper_loss(self, w: Tensor, theta: Tensor) -> Tensor:
        r = self.x_val @ w - self.y_val
        return r @ r / (2 * len(self.y_val))

    def hessian(self, w: Tensor, theta: Tensor) -> Tensor:
        n = self.x.shape[1]
        return self.x.T @ self.x / len(self.y) + theta[0] * torch.eye(n, dtype=DTYPE)

    def mixed(self, w: Tensor, theta: Tensor) -> Tensor:
        """``J = d2L / (dw dtheta)``: (n, 1)."""
        return w[:, None]

    def lower_grad(self, w: Tensor, theta: Tensor) -> Tensor:
        return self.x.T @ (self.x @ w - self.y) / len(self.y) + theta[0] * w

    def solution(self, theta: Tensor) -> Tensor:
        h = self.hessian(theta.new_zeros(self.x.shape[1]), theta)
        return torch.linalg.solve(h, self.x.T @ self.y / len(self.y))

    def upper_grads(self, w: Tensor, theta: Tensor) -> tuple[Tensor, Tensor]:
        """(dF/dw, direct dF/dtheta)."""
        return self.x_val.T @ (self.x_val @ w - self.y_val) / len(self.y_val), torch.zeros_like(
            theta
        )


@dataclass
class Quadratic:
    """(b) ``L = w^T H w / 2 - w^T (B theta + c)``, ``F = a^T w``; H random SPD."""

    h: Tensor
    b: Tensor
    c: Tensor
    a: Tensor
    name: str = "quadratic"

    @classmethod
    def make(
        cls, n: int = 8, p: int | None = None, condition: float = 10.0, seed: int = 0
    ) -> Quadratic:
        g = torch.Generator().manual_seed(seed)
        p = n if p is None else p
        h = spd_matrix(n, condition, g)
        b = torch.eye(n, p, dtype=DTYPE) if p == n else torch.randn(n, p, generator=g, dtype=DTYPE)
        c = torch.randn(n, generator=g, dtype=DTYPE)
        a = torch.randn(n, generator=g, dtype=DTYPE)
        return cls(h, b, c, a)

    @property
    def sizes(self) -> tuple[int, int]:
        return self.b.shape[0], self.b.shape[1]

    def theta0(self) -> Tensor:
        return torch.linspace(-1, 1, self.b.shape[1], dtype=DTYPE)

    def lower_loss(self, w: Tensor, theta: Tensor) -> Tensor:
        return 0.5 * w @ (self.h @ w) - w @ (self.b @ theta + self.c)

    def upper_loss(self, w: Tensor, theta: Tensor) -> Tensor:
        return self.a @ w

    def hessian(self, w: Tensor, theta: Tensor) -> Tensor:
        return self.h

    def mixed(self, w: Tensor, theta: Tensor) -> Tensor:
        return -self.b

    def lower_grad(self, w: Tensor, theta: Tensor) -> Tensor:
        return self.h @ w - (self.b @ theta + self.c)

    def solution(self, theta: Tensor) -> Tensor:
        return torch.linalg.solve(self.h, self.b @ theta + self.c)

    def upper_grads(self, w: Tensor, theta: Tensor) -> tuple[Tensor, Tensor]:
        return self.a.clone(), torch.zeros_like(theta)


@dataclass
class LowRankQuadratic:
    """(b) at scale: ``H = diag(d) + U U^T`` (matrix-free, Woodbury), ``B = I``, ``F = a^T w``.

    The same problem as :class:`Quadratic` with a Hessian that never materializes, so that
    n can reach 10^6 and the estimators' own memory becomes visible.
    """

    d: Tensor
    u: Tensor
    c: Tensor
    a: Tensor
    name: str = "quadratic (diag + low rank)"

    @classmethod
    def make(
        cls, n: int, rank: int = 4, condition: float = 100.0, seed: int = 0
    ) -> LowRankQuadratic:
        g = torch.Generator().manual_seed(seed)
        d = torch.logspace(0, torch.log10(torch.tensor(condition / 2)).item(), n, dtype=DTYPE)
        d = d[torch.randperm(n, generator=g)]
        u = torch.randn(n, rank, generator=g, dtype=DTYPE) * (condition / (2 * n)) ** 0.5
        return cls(
            d, u, torch.randn(n, generator=g, dtype=DTYPE), torch.randn(n, generator=g, dtype=DTYPE)
        )

    @property
    def sizes(self) -> tuple[int, int]:
        return len(self.d), len(self.d)

    def theta0(self) -> Tensor:
        return torch.linspace(-1, 1, len(self.d), dtype=DTYPE)

    def hmv(self, x: Tensor) -> Tensor:
        """``H x``."""
        return self.d * x + self.u @ (self.u.T @ x)

    def hsolve(self, x: Tensor) -> Tensor:
        """``H^{-1} x`` by the Woodbury identity."""
        dinv_x, dinv_u = x / self.d, self.u / self.d[:, None]
        small = torch.eye(self.u.shape[1], dtype=DTYPE) + self.u.T @ dinv_u
        return dinv_x - dinv_u @ torch.linalg.solve(small, self.u.T @ dinv_x)

    def largest_curvature(self, iterations: int = 100) -> float:
        """L = lambda_max(H) by power iteration."""
        x = torch.ones_like(self.d)
        for _ in range(iterations):
            x = self.hmv(x)
            x = x / x.norm()
        return float(x @ self.hmv(x))

    def lower_loss(self, w: Tensor, theta: Tensor) -> Tensor:
        return 0.5 * w @ self.hmv(w) - w @ (theta + self.c)

    def upper_loss(self, w: Tensor, theta: Tensor) -> Tensor:
        return self.a @ w

    def lower_grad(self, w: Tensor, theta: Tensor) -> Tensor:
        return self.hmv(w) - (theta + self.c)

    def solution(self, theta: Tensor) -> Tensor:
        return self.hsolve(theta + self.c)

    def upper_grads(self, w: Tensor, theta: Tensor) -> tuple[Tensor, Tensor]:
        return self.a.clone(), torch.zeros_like(theta)

    def exact_hypergradient(self, theta: Tensor) -> Tensor:
        return self.hsolve(self.a)  # B = I, J = -I


Problem = Ridge | Quadratic | LowRankQuadratic


def initial_lower(n: int) -> Tensor:
    """The lower level's starting point (non-zero: ridge's unrolled Jacobian starts at -lr w0)."""
    return torch.linspace(-0.5, 0.5, n, dtype=DTYPE)


def implicit_hypergradient(problem: Ridge | Quadratic, w: Tensor, theta: Tensor) -> Tensor:
    """``direct - J^T H^{-1} dF/dw`` at ``(w, theta)``: exact at ``w = w*(theta)``."""
    v, direct = problem.upper_grads(w, theta)
    x = torch.linalg.solve(problem.hessian(w, theta), v)
    return direct - problem.mixed(w, theta).T @ x


def exact_hypergradient(problem: Problem, theta: Tensor) -> Tensor:
    """The exact hypergradient of ``F(w*(theta), theta)``."""
    if isinstance(problem, LowRankQuadratic):
        return problem.exact_hypergradient(theta)
    return implicit_hypergradient(problem, problem.solution(theta), theta)


def sgd_unrolled_jacobian(
    problem: Ridge | Quadratic, theta: Tensor, w0: Tensor, lr: float, steps: int
) -> tuple[Tensor, Tensor]:
    """``(w_K, d w_K / d theta)`` for K plain SGD steps, by forward recursion (no autograd)."""
    w = w0.clone()
    d = torch.zeros(len(w0), len(theta), dtype=DTYPE)
    eye = torch.eye(len(w0), dtype=DTYPE)
    for _ in range(steps):
        h, j = problem.hessian(w, theta), problem.mixed(w, theta)
        d = (eye - lr * h) @ d - lr * j
        w = w - lr * problem.lower_grad(w, theta)
    return w, d


def unrolled_hypergradient(
    problem: Problem, theta: Tensor, w0: Tensor, lr: float, steps: int
) -> Tensor:
    """Exact gradient of the unrolled objective ``F(w_K(theta), theta)`` for K SGD steps.

    Quadratic: ``D_K = lr sum_{j<K} (I - lr H)^j B``, applied to v with K matrix-vector
    products; otherwise the forward recursion of :func:`sgd_unrolled_jacobian`.
    """
    if isinstance(problem, Quadratic | LowRankQuadratic):
        w = w0.clone()
        for _ in range(steps):
            w = w - lr * problem.lower_grad(w, theta)
        v, direct = problem.upper_grads(w, theta)
        term, total = v.clone(), torch.zeros_like(v)
        hmv = problem.hmv if isinstance(problem, LowRankQuadratic) else problem.h.__matmul__
        for _ in range(steps):
            total = total + term
            term = term - lr * hmv(term)
        if isinstance(problem, LowRankQuadratic):
            return direct + lr * total
        return direct + lr * problem.b.T @ total
    w, jac = sgd_unrolled_jacobian(problem, theta, w0, lr, steps)
    v, direct = problem.upper_grads(w, theta)
    return direct + jac.T @ v


# ----------------------------------------------------------------------------------------------
# (c) the three-level chain
# ----------------------------------------------------------------------------------------------


@dataclass
class Chain:
    """(c) bottom ``a``: ``L_a = a^T Ha a/2 - a^T (Ba c + da)``;
    middle ``b``: ``L_b = b^T Hb b/2 - b^T (Bb a + db)``;
    top ``c``: ``F = ea^T a + ||b - tb||^2 / 2 + rho ||c||^2 / 2``.

    Graph: u2l {top: [bottom]}, l2u {bottom: [middle, top], middle: [top]}; the top's
    gradient reaches ``c`` along ``[top, middle, bottom, top]`` and ``[top, bottom, top]``.
    """

    ha: Tensor
    ba: Tensor
    da: Tensor
    hb: Tensor
    bb: Tensor
    db: Tensor
    ea: Tensor
    tb: Tensor
    rho: float = 0.1

    @classmethod
    def make(
        cls, na: int = 6, nb: int = 5, nc: int = 4, condition: float = 10.0, seed: int = 0
    ) -> Chain:
        g = torch.Generator().manual_seed(seed)

        def randn(*shape: int) -> Tensor:
            return torch.randn(*shape, generator=g, dtype=DTYPE)

        return cls(
            spd_matrix(na, condition, g), randn(na, nc), randn(na),
            spd_matrix(nb, condition, g), randn(nb, na), randn(nb),
            randn(na), randn(nb),
        )  # fmt: skip

    def theta0(self) -> Tensor:
        return torch.linspace(-1, 1, self.ba.shape[1], dtype=DTYPE)

    def solve_a(self, c: Tensor) -> Tensor:
        return torch.linalg.solve(self.ha, self.ba @ c + self.da)

    def solve_b(self, a: Tensor) -> Tensor:
        return torch.linalg.solve(self.hb, self.bb @ a + self.db)

    def composed(self, c: Tensor, b: Tensor, inv_a: Tensor, inv_b: Tensor) -> Tensor:
        """``rho c + Ba^T Sa (ea + Bb^T Sb (b - tb))``: the path composition with ``S ~ H^{-1}``."""
        return self.rho * c + self.ba.T @ (inv_a @ (self.ea + self.bb.T @ (inv_b @ (b - self.tb))))

    def exact_hypergradient(self, c: Tensor) -> Tensor:
        """Exact ``dF/dc`` with both lower levels at their optima."""
        b = self.solve_b(self.solve_a(c))
        return self.composed(c, b, torch.linalg.inv(self.ha), torch.linalg.inv(self.hb))


# ----------------------------------------------------------------------------------------------
# (d) the nested three-level problem: a middle level whose loss reads its lower's response
# ----------------------------------------------------------------------------------------------


@dataclass
class Nested:
    """(d) ``theta`` tunes ``v``, ``v`` tunes ``u``, and ``v``'s loss reads ``u*(v)``.

    - bottom ``u`` (n_u): ``L_u(u, v) = u^T A u / 2 - u^T (C v + a)``, so ``u*(v) = u0 + U v``
      with ``U = A^{-1} C`` and ``u0 = A^{-1} a``;
    - middle ``v`` (n_v): ``L_v(v, u, theta) = v^T P v / 2 + v^T R u
      + (u - E theta - e)^T Q (u - E theta - e) / 2 - v^T (D theta + d)``, minimised over ``v``
      with ``u = u*(v)`` (``v`` differentiates through ``u``);
    - top ``theta`` (p): ``F(theta, v, u) = f^T v + ||u - t||^2 / 2 + rho ||theta||^2 / 2`` at
      ``v = v*(theta)``, ``u = u*(v*(theta))``.

    Graph: ``u2l {v: [u], theta: [v, u]}``, ``l2u {u: [v], v: [theta]}``.

    Closed form. ``l(v, theta) = L_v(v, u*(v), theta)`` is quadratic in ``v`` with the *total*
    Hessian ``H = P + R U + U^T R^T + U^T Q U`` (``P`` alone is the partial one) and the total
    mixed partial ``d2l/dv dtheta = -(D + U^T Q E)``; hence ``v*(theta) = H^{-1} (D theta + d
    + U^T Q (E theta + e) - R u0 - U^T Q u0)`` and

        dF/dtheta = rho theta + (D + U^T Q E)^T H^{-1} (f + U^T (u* - t))

    (``f + U^T (u* - t)``: ``F``'s total derivative in ``v``, through ``u*(v)``).
    :meth:`nested_objective` evaluates ``F`` by solving both levels, for finite differences.
    """

    a_mat: Tensor
    c: Tensor
    a: Tensor
    p_mat: Tensor
    r: Tensor
    q: Tensor
    e_mat: Tensor
    e: Tensor
    d_mat: Tensor
    d: Tensor
    f: Tensor
    t: Tensor
    rho: float = 0.1
    name: str = "nested"

    @classmethod
    def make(
        cls, nu: int = 5, nv: int = 4, p: int = 3, coupling: float = 0.5, seed: int = 0
    ) -> Nested:
        """A random instance; ``coupling`` scales ``C``, ``R`` and ``Q`` (how much ``v`` reads
        ``u*(v)``); the total Hessian is checked positive definite."""
        g = torch.Generator().manual_seed(seed)

        def randn(*shape: int) -> Tensor:
            return torch.randn(*shape, generator=g, dtype=DTYPE)

        a_mat = spd_matrix(nu, 10.0, g)
        p_mat = spd_matrix(nv, 10.0, g)
        q_half = randn(nu, nu) / nu**0.5
        problem = cls(
            a_mat, coupling * randn(nu, nv), randn(nu),
            p_mat, coupling * randn(nv, nu) / nu**0.5, coupling * (q_half @ q_half.T),
            randn(nu, p), randn(nu), randn(nv, p), randn(nv), randn(nv), randn(nu),
        )  # fmt: skip
        smallest = float(torch.linalg.eigvalsh(problem.total_hessian()).min())
        if smallest <= 0:
            raise ValueError(f"Nested.make: total Hessian not positive definite ({smallest:.3g})")
        return problem

    @property
    def sizes(self) -> tuple[int, int, int]:
        """(n_u, n_v, p)."""
        return self.a_mat.shape[0], self.p_mat.shape[0], self.d_mat.shape[1]

    def theta0(self) -> Tensor:
        return torch.linspace(-1, 1, self.sizes[2], dtype=DTYPE)

    # -- the three losses (what the graph's nodes evaluate) -------------------------------------

    def bottom_loss(self, u: Tensor, v: Tensor) -> Tensor:
        return 0.5 * u @ (self.a_mat @ u) - u @ (self.c @ v + self.a)

    def middle_loss(self, v: Tensor, u: Tensor, theta: Tensor) -> Tensor:
        s = u - self.e_mat @ theta - self.e
        return (
            0.5 * v @ (self.p_mat @ v)
            + v @ (self.r @ u)
            + 0.5 * s @ (self.q @ s)
            - v @ (self.d_mat @ theta + self.d)
        )

    def top_loss(self, theta: Tensor, v: Tensor, u: Tensor) -> Tensor:
        return self.f @ v + 0.5 * (u - self.t) @ (u - self.t) + 0.5 * self.rho * theta @ theta

    # -- closed forms ---------------------------------------------------------------------------

    def response(self) -> Tensor:
        """``U = du*/dv = A^{-1} C``."""
        return torch.linalg.solve(self.a_mat, self.c)

    def solve_u(self, v: Tensor) -> Tensor:
        return torch.linalg.solve(self.a_mat, self.c @ v + self.a)

    def total_hessian(self) -> Tensor:
        """``H = P + R U + U^T R^T + U^T Q U``: the Hessian of ``L_v(v, u*(v), theta)`` in v."""
        u = self.response()
        return self.p_mat + self.r @ u + u.T @ self.r.T + u.T @ self.q @ u

    def total_mixed(self) -> Tensor:
        """``d2l / dv dtheta = -(D + U^T Q E)`` (n_v, p)."""
        return -(self.d_mat + self.response().T @ self.q @ self.e_mat)

    def solve_v(self, theta: Tensor) -> Tensor:
        """``v*(theta)``: the zero of ``dl/dv = H v + (R + U^T Q) u0 - U^T Q (E theta + e)
        - D theta - d``."""
        u_mat, u0 = self.response(), self.solve_u(torch.zeros(self.sizes[1], dtype=DTYPE))
        rhs = (
            self.d_mat @ theta
            + self.d
            + u_mat.T @ self.q @ (self.e_mat @ theta + self.e)
            - (self.r + u_mat.T @ self.q) @ u0
        )
        return torch.linalg.solve(self.total_hessian(), rhs)

    def nested_objective(self, theta: Tensor) -> Tensor:
        """``F(theta, v*(theta), u*(v*(theta)))`` by solving both levels."""
        v = self.solve_v(theta)
        return self.top_loss(theta, v, self.solve_u(v))

    def exact_hypergradient(self, theta: Tensor) -> Tensor:
        """``rho theta + (D + U^T Q E)^T H^{-1} (f + U^T (u* - t))``."""
        v = self.solve_v(theta)
        u_mat = self.response()
        total_v = self.f + u_mat.T @ (self.solve_u(v) - self.t)
        return self.rho * theta - self.total_mixed().T @ torch.linalg.solve(
            self.total_hessian(), total_v
        )

    def partial_hypergradient(self, theta: Tensor, inverse: Tensor | None = None) -> Tensor:
        """What Betty's paths compute here: ``rho theta + D^T S f`` (``S = P^{-1}`` for an exact
        solve on the *partial* Hessian, ``S = I`` for darts): the path ``[theta, u, v, theta]``
        is missing and ``v``'s estimator holds ``u`` fixed."""
        s = torch.linalg.inv(self.p_mat) if inverse is None else inverse
        return self.rho * theta + self.d_mat.T @ (s @ self.f)


def central_differences(fn: Callable[[Tensor], Tensor], x: Tensor, step: float = 1e-5) -> Tensor:
    """``dfn/dx`` by central differences, one coordinate at a time."""
    out = torch.zeros_like(x)
    for i in range(len(x)):
        h = torch.zeros_like(x)
        h[i] = step
        out[i] = (fn(x + h) - fn(x - h)) / (2 * step)
    return out
