"""PB2 explore (Parker-Holder et al. 2020, "Provably Efficient Online Hyperparameter Optimization with
Population-Based Bandits"): choose a member's new hyperparameters with a GP bandit instead of random noise.

Data: every interval of every member where its weights were its own (no exploit in between) gives one point
``(x, t) -> y``: ``x`` the hyperparameters in force during the interval (unit coordinates of the keys' search
spaces, ``poptrain.pbt.explore.Dim``), ``t`` the interval's PBT iteration, ``y`` the change of the objective
over the interval. The paper's reasoning: the improvement per interval, not the level, is what the
hyperparameters control once a member has copied a leader's weights.

Model: a GP with the time-varying kernel of the paper (after Bogunovic et al. 2016),
``k((x, t), (x', t')) = exp(-|x - x'|^2 / (2 l^2)) * (1 - eps)^(|t - t'| / 2)``: old intervals count less as
training moves on. ``y`` is standardised; the length scale ``l``, forgetting rate ``eps`` and noise variance
are chosen on a small grid by the log marginal likelihood (no optimiser, no GPy: 4-16 members x ~15
intervals is at most a few hundred points).

Choice: the point of the bounded unit box that maximises ``UCB = mean + kappa * std`` at the next iteration,
over 2,000 uniform candidates plus 200 around the 5 best observed points. The other members' current
hyperparameters are added as pending points with the GP's own mean as their value (GP-BUCB, Desautels et al.
2014, as PB2 does for parallel members): their variance shrinks, so members spread out instead of all
choosing the same point. With fewer than 3 data points the choice is uniform at random.

Pure: numbers come from the injected ``random.Random`` (turned into one numpy generator).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from poptrain.pbt.explore import Dim

LENGTHSCALES = (0.1, 0.2, 0.35, 0.6, 1.0)
EPSILONS = (0.0, 0.05, 0.15, 0.3)
NOISES = (1e-3, 1e-2, 0.1, 0.5)
DEFAULT_KAPPA = 2.0  # UCB width; PB2's sqrt(beta_t) is ~2-3 for a few hundred points in a few dimensions
MIN_POINTS = 3


def kernel(
    x1: np.ndarray, t1: np.ndarray, x2: np.ndarray, t2: np.ndarray, lengthscale: float, eps: float
) -> np.ndarray:
    """Squared-exponential in x times the time decay ``(1 - eps)^(|t - t'| / 2)``: shape [len(x1), len(x2)]."""
    sq = ((x1[:, None, :] - x2[None, :, :]) ** 2).sum(-1)
    decay = (1.0 - eps) ** (np.abs(t1[:, None] - t2[None, :]) / 2.0)
    return np.exp(-sq / (2.0 * lengthscale**2)) * decay


@dataclass
class GP:
    """A zero-mean GP regression on standardised targets (unit signal variance)."""

    lengthscale: float
    eps: float
    noise: float

    def fit(self, x: np.ndarray, t: np.ndarray, y: np.ndarray) -> GP:
        self.x, self.t = np.asarray(x, float), np.asarray(t, float)
        y = np.asarray(y, float)
        self.y_mean = float(y.mean())
        self.y_std = float(y.std()) or 1.0
        self.z = (y - self.y_mean) / self.y_std
        k = kernel(self.x, self.t, self.x, self.t, self.lengthscale, self.eps)
        self.chol = np.linalg.cholesky(k + (self.noise + 1e-8) * np.eye(len(y)))
        self.alpha = np.linalg.solve(self.chol.T, np.linalg.solve(self.chol, self.z))
        return self

    def log_marginal_likelihood(self) -> float:
        n = len(self.z)
        return float(
            -0.5 * self.z @ self.alpha - np.log(np.diag(self.chol)).sum() - 0.5 * n * math.log(2 * math.pi)
        )

    def predict(self, x: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation (of the latent function) in the targets' units."""
        ks = kernel(np.asarray(x, float), np.asarray(t, float), self.x, self.t, self.lengthscale, self.eps)
        mean = ks @ self.alpha
        v = np.linalg.solve(self.chol, ks.T)
        var = np.clip(1.0 - (v**2).sum(0), 1e-12, None)
        return mean * self.y_std + self.y_mean, np.sqrt(var) * self.y_std


def fit_gp(x: np.ndarray, t: np.ndarray, y: np.ndarray) -> GP:
    """The GP of the hyperparameter grid with the highest log marginal likelihood."""
    best: GP | None = None
    best_lml = -math.inf
    for ls, eps, noise in itertools.product(LENGTHSCALES, EPSILONS, NOISES):
        try:
            gp = GP(ls, eps, noise).fit(x, t, y)
        except np.linalg.LinAlgError:
            continue
        lml = gp.log_marginal_likelihood()
        if lml > best_lml:
            best, best_lml = gp, lml
    if best is None:
        raise np.linalg.LinAlgError("no GP hyperparameters gave a positive definite kernel")
    return best


def ucb_point(
    x: np.ndarray,
    t: np.ndarray,
    y: np.ndarray,
    t_next: float,
    pending: np.ndarray,
    gen: np.random.Generator,
    kappa: float = DEFAULT_KAPPA,
    n_candidates: int = 2000,
) -> np.ndarray:
    """The unit-box point maximising mean + kappa * std at ``t_next`` (uniform at random below MIN_POINTS)."""
    d = int(x.shape[1])  # x is [n, d] even when n = 0
    if len(y) < MIN_POINTS:
        return gen.uniform(size=(d,))
    gp = fit_gp(x, t, y)
    if len(pending):  # GP-BUCB: the pending points' values are the GP's own mean (only the variance changes)
        t_pend = np.full(len(pending), float(t_next))
        mean_pend, _ = gp.predict(pending, t_pend)
        gp = GP(gp.lengthscale, gp.eps, gp.noise).fit(
            np.vstack([x, pending]), np.concatenate([t, t_pend]), np.concatenate([y, mean_pend])
        )
    top = x[np.argsort(-y)[:5]]
    local = np.clip(top[gen.integers(0, len(top), 200)] + gen.normal(0.0, 0.1, (200, d)), 0.0, 1.0)
    cand = np.vstack([gen.uniform(size=(n_candidates, d)), local])
    mean, std = gp.predict(cand, np.full(len(cand), float(t_next)))
    return cand[int(np.argmax(mean + kappa * std))]


def history_points(
    histories: Mapping[int, Sequence[Any]], dims: Sequence[Dim]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x [n, d], t [n], y [n]) from each member's metadata history (MemberMeta-like, oldest first)."""
    xs: list[list[float]] = []
    ts: list[float] = []
    ys: list[float] = []
    for metas in histories.values():
        for a, b in itertools.pairwise(metas):
            if b.exploits != a.exploits:  # the weights changed hands: the change is not this interval's doing
                continue
            if not (math.isfinite(a.objective) and math.isfinite(b.objective)):
                continue
            if any(d.key not in b.params for d in dims):
                continue
            xs.append([d.to_unit(float(b.params[d.key])) for d in dims])
            ts.append(float(b.iteration))
            ys.append(float(b.objective) - float(a.objective))
    return np.array(xs, float).reshape(-1, len(dims)), np.array(ts, float), np.array(ys, float)


def suggest(
    histories: Mapping[int, Sequence[Any]],
    dims: Sequence[Dim],
    pending: Sequence[Mapping[str, Any]],
    t_next: float,
    rng: random.Random,
    kappa: float = DEFAULT_KAPPA,
) -> dict[str, float | int]:
    """New values for every key of ``dims`` (PB2's choice for one member)."""
    x, t, y = history_points(histories, dims)
    pend = np.array(
        [[d.to_unit(float(p[d.key])) for d in dims] for p in pending if all(d.key in p for d in dims)], float
    ).reshape(-1, len(dims))
    gen = np.random.default_rng(rng.getrandbits(64))
    point = ucb_point(x, t, y, t_next, pend, gen, kappa)
    return {d.key: d.from_unit(float(u)) for d, u in zip(dims, point, strict=True)}
