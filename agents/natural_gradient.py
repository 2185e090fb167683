"""TRPO's natural-gradient step for one level: conjugate gradient, Fisher-vector product, line search.

Trust Region Policy Optimization (Schulman et al., 2015) maximises a surrogate objective subject to a
bound on the mean KL divergence between the policy that collected the data and the updated one. The step
direction is ``F^-1 g`` (``F`` the Fisher matrix, the Hessian of that KL at the current parameters, and
``g`` the surrogate's gradient), found by conjugate gradient from Fisher-vector products alone, scaled to
the KL bound and shortened by a backtracking line search. Like :mod:`himo.agents.ppo`, it takes closures over
whatever the caller computes rather than owning actor modules, so any level can use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils import parameters_to_vector


@dataclass(frozen=True)
class TRPOReport:
    """What one :func:`trpo_step` did.

    ``kl`` is the measured mean KL after the accepted step and ``improvement`` the surrogate's gain (both 0
    when rejected); ``step_fraction`` is the accepted fraction of the full natural step (0 when rejected),
    ``line_search_steps`` the number of trial steps evaluated and ``gradient_norm`` the surrogate
    gradient's norm.
    """

    accepted: bool
    kl: float
    improvement: float
    step_fraction: float
    line_search_steps: int
    gradient_norm: float


def flat_gradient(
    output: Tensor, parameters: Sequence[nn.Parameter], *, create_graph: bool = False, retain_graph: bool | None = None
) -> Tensor:
    """Gradient of a scalar ``output`` with respect to ``parameters`` as one flat vector (0 where unused).

    Uses ``torch.autograd.grad``, so nothing is accumulated into the parameters' ``.grad``.
    """
    gradients = torch.autograd.grad(
        output, parameters, create_graph=create_graph, retain_graph=retain_graph, allow_unused=True
    )
    return torch.cat(
        [
            torch.zeros(parameter.numel(), dtype=parameter.dtype, device=parameter.device)
            if gradient is None
            else gradient.reshape(-1)
            for parameter, gradient in zip(parameters, gradients, strict=True)
        ]
    )


def assign_flat(vector: Tensor, parameters: Sequence[nn.Parameter]) -> None:
    """Copy the slices of a flat ``vector`` into ``parameters`` in place (the inverse of ``parameters_to_vector``)."""
    # In-place copies keep each parameter's own storage (``vector_to_parameters`` rebinds ``.data`` to views
    # of one vector) and bump autograd version counters, so a stale graph over the old values fails loudly.
    with torch.no_grad():
        for parameter, values in zip(parameters, vector.split([p.numel() for p in parameters]), strict=True):
            parameter.copy_(values.view_as(parameter))


def conjugate_gradient(
    matrix_vector_product: Callable[[Tensor], Tensor],
    vector: Tensor,
    iterations: int = 10,
    residual_tolerance: float = 1e-10,
) -> Tensor:
    """Approximate ``x`` with ``A x = vector`` for a symmetric positive-definite ``A`` known only through ``A v``.

    Starts from ``x = 0`` and stops after ``iterations`` products, once the squared residual norm
    ``|vector - A x|^2`` is at most ``residual_tolerance``, or when a search direction has non-positive
    (or non-finite) curvature, i.e. ``A`` is not positive definite along it.
    """
    solution = torch.zeros_like(vector)
    residual = vector.clone()
    direction = vector.clone()
    residual_norm = residual.dot(residual)
    for _ in range(iterations):
        if not residual_norm > residual_tolerance:
            break
        product = matrix_vector_product(direction)
        curvature = direction.dot(product)
        if not (torch.isfinite(curvature) and curvature > 0):
            break
        step = residual_norm / curvature
        solution = solution + step * direction
        residual = residual - step * product
        new_residual_norm = residual.dot(residual)
        direction = residual + (new_residual_norm / residual_norm) * direction
        residual_norm = new_residual_norm
    return solution


def fisher_vector_product(
    kl: Callable[[], Tensor], parameters: Sequence[nn.Parameter], damping: float = 0.1
) -> Callable[[Tensor], Tensor]:
    """``v -> (H + damping I) v`` with ``H`` the Hessian of ``kl()`` at the current ``parameters``.

    ``kl()`` returns the mean KL(old || current) with the old policy held fixed (detached); where the current
    parameters are the old policy's, its Hessian is the Fisher information matrix. The KL and its gradient
    graph are built once here; each product is one more backward pass (double backprop) through that graph,
    so the returned function is valid only until the parameters change.
    """
    parameters = list(parameters)
    with torch.enable_grad():
        kl_gradient = flat_gradient(kl(), parameters, create_graph=True)

    def product(vector: Tensor) -> Tensor:
        with torch.enable_grad():
            directional = kl_gradient.dot(vector.detach())
            if not directional.requires_grad:  # the KL is at most linear in the parameters: zero Hessian
                return damping * vector
            hessian_vector = flat_gradient(directional, parameters, retain_graph=True)
        return hessian_vector + damping * vector

    return product


def trpo_step(
    parameters: Sequence[nn.Parameter],
    surrogate: Callable[[], Tensor],
    kl: Callable[[], Tensor],
    max_kl: float,
    damping: float = 0.1,
    cg_iterations: int = 10,
    backtrack_steps: int = 10,
    backtrack_ratio: float = 0.5,
    surrogate_and_kl: Callable[[], tuple[Tensor, Tensor]] | None = None,
) -> TRPOReport:
    """One TRPO update of ``parameters`` (distinct, trainable) in place; returns what it did.

    ``surrogate()`` is the objective to maximise (e.g. the mean of ratio * advantage) and ``kl()`` the mean
    KL between the fixed old policy and the current one; both are recomputed from the current parameters at
    every call. The natural direction ``x = F^-1 g`` is scaled to the full step ``sqrt(2 max_kl / x.Fx) x``,
    then fractions ``backtrack_ratio ** i`` of it are tried in turn and the first that improves the
    surrogate with a measured ``kl() <= max_kl`` is kept. If none is, or the gradient is zero or not
    finite, or ``x.Fx`` is not positive, the parameters are left exactly as they were. No gradients are
    left on the parameters' ``.grad``. ``surrogate_and_kl()``, when given, returns both from one evaluation of
    the policy and serves the line search's trials.
    """
    if max_kl <= 0 or damping < 0 or cg_iterations < 1 or backtrack_steps < 1 or not 0 < backtrack_ratio < 1:
        raise ValueError(
            "trpo_step needs max_kl > 0, damping >= 0, cg_iterations >= 1, backtrack_steps >= 1 and "
            f"0 < backtrack_ratio < 1; got max_kl={max_kl}, damping={damping}, cg_iterations={cg_iterations}, "
            f"backtrack_steps={backtrack_steps}, backtrack_ratio={backtrack_ratio}"
        )
    parameters = list(parameters)
    original = parameters_to_vector(parameters).detach().clone()
    with torch.enable_grad():
        objective = surrogate()
        gradient = flat_gradient(objective, parameters)
    baseline = float(objective.detach())
    gradient_norm = float(gradient.norm())

    def rejected(line_search_steps: int = 0) -> TRPOReport:
        return TRPOReport(False, 0.0, 0.0, 0.0, line_search_steps, gradient_norm)

    if not (math.isfinite(gradient_norm) and gradient_norm > 0 and math.isfinite(baseline)):
        return rejected()
    product = fisher_vector_product(kl, parameters, damping)
    direction = conjugate_gradient(product, gradient, cg_iterations)
    curvature = float(direction.dot(product(direction)))
    if not (math.isfinite(curvature) and curvature > 0):
        return rejected()
    full_step = math.sqrt(2.0 * max_kl / curvature) * direction
    with torch.no_grad():
        for trial in range(backtrack_steps):
            fraction = backtrack_ratio**trial
            assign_flat(original + fraction * full_step, parameters)
            trial_surrogate, trial_kl = surrogate_and_kl() if surrogate_and_kl else (surrogate(), kl())
            improvement, measured_kl = float(trial_surrogate) - baseline, float(trial_kl)
            if math.isfinite(improvement) and improvement > 0 and measured_kl <= max_kl:  # False for a NaN KL
                return TRPOReport(True, measured_kl, improvement, fraction, trial + 1, gradient_norm)
        assign_flat(original, parameters)
    return rejected(backtrack_steps)
