"""A small Levenberg–Marquardt least-squares solver for the DOAS fit.

Written for few parameters (≤ ~16) and an analytic Jacobian.  Each step solves the
column-scaled normal equations ``(Ĵᵀ Ĵ + λ I) δ̂ = Ĵᵀ r`` (Marquardt's scaling by the
Jacobian column norms makes the step independent of parameter units, which span 1e-3 to
1e19 here).  Bounds are enforced by projection, and a parameter on a bound whose descent direction
points outwards is held for that step (a simple active set).  Iteration stops when the *predicted*
reduction of the sum of squares for the next (undamped-ish) step is below ``ftol`` times
the current sum of squares: the linear model then says no step can help, so we do not
spend an evaluation finding out.  Parameter errors come from ``(JᵀJ)⁻¹ · χ²/(m − n)``.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

ModelFunction = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass
class LeastSquaresResult:
    x: np.ndarray               # best parameters (free ones)
    errors: np.ndarray          # 1-sigma errors (NaN when the covariance is singular)
    residual: np.ndarray        # measured − model at the best parameters
    model: np.ndarray
    cost: float                 # sum of squared residuals
    iterations: int
    evaluations: int
    converged: bool
    message: str


def _covariance_errors(jac: np.ndarray, cost: float) -> np.ndarray:
    m, n = jac.shape
    scale = np.sqrt(np.einsum("ij,ij->j", jac, jac))
    scale[scale == 0] = 1.0
    js = jac / scale
    try:
        inv = np.linalg.inv(js.T @ js)
    except np.linalg.LinAlgError:
        return np.full(n, np.nan)
    dof = max(m - n, 1)
    var = np.diag(inv) * (cost / dof)
    var = np.where(var >= 0, var, np.nan)
    return np.sqrt(var) / scale


def levenberg_marquardt(fun: ModelFunction, measured: np.ndarray, x0: np.ndarray, *,
                        lower: np.ndarray | None = None, upper: np.ndarray | None = None,
                        max_iterations: int = 100, ftol: float = 1e-7, initial_damping: float = 1e-5,
                        ) -> LeastSquaresResult:
    """Minimise ``|measured − fun(x)[0]|²``; ``fun`` returns (model, Jacobian d model/d x)."""
    x = np.array(x0, dtype=np.float64)
    n = x.size
    lower = np.full(n, -np.inf) if lower is None else np.asarray(lower, dtype=np.float64)
    upper = np.full(n, np.inf) if upper is None else np.asarray(upper, dtype=np.float64)
    x = np.clip(x, lower, upper)
    model, jac = fun(x)
    evaluations = 1
    residual = measured - model
    cost = float(residual @ residual)
    if not np.isfinite(cost):
        return LeastSquaresResult(x, np.full(n, np.nan), residual, model, cost, 0, 1, False,
                                  "model is not finite at the first guess")
    damping = initial_damping
    converged = False
    message = "maximum number of iterations reached"
    iteration = 0
    bounded = np.isfinite(lower) | np.isfinite(upper)
    for iteration in range(1, max_iterations + 1):
        scale = np.sqrt(np.einsum("ij,ij->j", jac, jac))
        scale[scale == 0] = 1.0
        js = jac / scale
        gradient = residual @ js
        # Parameters sitting on a bound with the descent direction pointing outwards are held.
        active = bounded & (((x <= lower) & (gradient < 0)) | ((x >= upper) & (gradient > 0)))
        if active.any():
            keep = ~active
            js_free = js[:, keep]
            gradient_free = gradient[keep]
        else:
            keep, js_free, gradient_free = None, js, gradient
        jtj = js_free.T @ js_free
        diagonal = np.arange(jtj.shape[0])
        accepted = False
        while damping < 1e12:
            damped = jtj.copy()
            damped[diagonal, diagonal] += damping
            try:
                step_scaled = np.linalg.solve(damped, gradient_free)
            except np.linalg.LinAlgError:
                damping *= 10.0
                continue
            # Predicted reduction of the linearised model for the unprojected step.
            unprojected = float(2.0 * step_scaled @ gradient_free - step_scaled @ (jtj @ step_scaled))
            if unprojected <= ftol * cost and damping <= initial_damping:
                converged, message = True, "predicted reduction below tolerance"
                break
            if keep is None:
                step = step_scaled / scale
            else:
                step = np.zeros(n)
                step[keep] = step_scaled / scale[keep]
            x_new = np.clip(x + step, lower, upper)
            actual_step = (x_new - x) * scale
            predicted_residual = residual - js @ actual_step
            predicted = cost - float(predicted_residual @ predicted_residual)
            if predicted <= 0:
                damping *= 10.0
                continue
            model_new, jac_new = fun(x_new)
            evaluations += 1
            residual_new = measured - model_new
            cost_new = float(residual_new @ residual_new)
            if np.isfinite(cost_new) and cost_new < cost:
                rho = (cost - cost_new) / predicted
                x, model, jac, residual = x_new, model_new, jac_new, residual_new
                reduction = cost - cost_new
                cost = cost_new
                damping = damping * (0.2 if rho > 0.75 else 1.0 if rho > 0.25 else 2.0)
                damping = max(damping, 1e-9)
                accepted = True
                if reduction <= ftol * cost and predicted <= 10 * ftol * cost:
                    converged, message = True, "reduction below tolerance"
                break
            damping *= 10.0
        if converged:
            break
        if not accepted:
            converged = bool(np.isfinite(cost))
            message = "no further reduction possible" if converged else "model became non-finite"
            break
    errors = _covariance_errors(jac, cost)
    return LeastSquaresResult(x, errors, residual, model, cost, iteration, evaluations, converged, message)
