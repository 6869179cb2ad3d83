"""Property checks for exercises that build an ``nn.Module``.

Introduced with the interview exercises. A module has no single right
output, so it is graded on behaviour: every parameter receives a gradient,
any batch size works, eval mode is deterministic, large inputs give no NaN,
the loss falls when overfitting one batch, plus exercise-specific checks.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any, Callable

import torch
from torch import Tensor, nn

from recattn_lessons.grading.core import CheckFailure, changed_inputs, is_stub, learner_error
from recattn_lessons.grading.guard import rng_devices

__all__ = ["build", "call", "call_eval", "first", "module_properties", "weights_ok", "same"]


def first(out: Any) -> Tensor:
    """The main output: ``out`` itself or its first element."""
    return out[0] if isinstance(out, (tuple, list)) else out


def build(cls: Callable, *args, seed: int = 0, **kwargs) -> nn.Module:
    """Construct the learner's module with a fixed seed, leaving global RNG as it was."""
    with torch.random.fork_rng(devices=rng_devices()):
        torch.manual_seed(seed)
        try:
            model = cls(*args, **kwargs)
        except Exception as exc:
            if is_stub(exc):
                raise
            raise CheckFailure(learner_error(exc, "", "construction")) from None
    if not isinstance(model, nn.Module):
        raise CheckFailure(f"{getattr(cls, '__name__', cls)} should build an nn.Module, "
                           f"got {type(model).__name__}")
    return model


def call(model: nn.Module, inputs: tuple, what: str, names: tuple = ()) -> Any:
    """``model(*inputs)``, turning an exception into a message about the learner's line.

    ``names`` are forward's argument names, so that an input modified in place is named
    (by default those of the learner's ``forward``)."""
    copies = tuple(t.clone() if isinstance(t, Tensor) else t for t in inputs)
    try:
        out = model(*copies)
    except Exception as exc:
        if is_stub(exc):
            raise
        raise CheckFailure(learner_error(exc, "", what)) from None
    edited = changed_inputs(inputs, copies, names)
    if edited and not names:  # name the argument as the learner's forward does
        edited = changed_inputs(inputs, copies, _forward_names(model))
    if edited:
        raise CheckFailure(f"On {what}: {edited}.")
    if out is None:
        raise CheckFailure(f"On {what}: forward returned None: it probably lacks a `return` "
                           f"statement (a value computed but never returned)")
    return out


def _forward_names(model: nn.Module) -> tuple:
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return ()
    return tuple(p.name for p in params
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def call_eval(model: nn.Module, inputs: tuple, what: str, names: tuple = ()) -> Any:
    """``call`` twice in eval mode: the two results must be identical."""
    out = call(model, inputs, what, names)
    again = call(model, inputs, what, names)
    for a, b in zip(out if isinstance(out, (tuple, list)) else (out,),
                    again if isinstance(again, (tuple, list)) else (again,)):
        if isinstance(a, Tensor) and isinstance(b, Tensor) and a.shape == b.shape \
                and not torch.equal(a.nan_to_num(0.5), b.nan_to_num(0.5)):
            raise CheckFailure(f"{what}: in eval mode two calls on the same input differ: "
                               f"dropout or sampling must be off after model.eval() (use "
                               f"nn.Dropout, or F.dropout(x, p, training=self.training))")
    return out


def same(a: Tensor, b: Tensor, tol: float = 1e-5) -> bool:
    """Equal up to float32 round-off."""
    return a.shape == b.shape and torch.allclose(a, b, rtol=tol, atol=tol)


def weights_ok(w: Tensor, valid: Tensor, what: str) -> None:
    """Attention weights: zero where ``valid`` is False, rows sum to 1 (or 0 if empty)."""
    valid = valid.expand_as(w)
    if torch.isnan(w).any():
        raise CheckFailure(f"{what}: the attention weights contain NaN")
    if (w[~valid].abs() > 1e-6).any():
        raise CheckFailure(f"{what}: padded / masked positions get non-zero weight; "
                           f"fill their scores with -inf before the softmax")
    want = valid.any(-1).to(w.dtype)
    if not same(w.sum(-1), want, 1e-4):
        raise CheckFailure(f"{what}: each row of attention weights must sum to 1 over "
                           f"the positions it may see (0 if it may see none); got row "
                           f"sums {w.sum(-1).flatten()[:4].tolist()}")


def module_properties(
    make: Callable[[], nn.Module],
    batch: Callable[[int], tuple],
    loss_of: Callable[[Any, tuple], Tensor],
    *,
    large: Callable[[nn.Module], tuple[nn.Module, tuple]],
    steps: int = 60,
    lr: float = 1e-2,
    drop: float = 0.5,
    needs_params: bool = True,
    names: tuple = (),
) -> None:
    """The generic module checks; raises CheckFailure naming the first problem.

    ``needs_params=False`` accepts a parameter-free module (then the gradient
    and training checks are skipped); ``names`` are forward's argument names.
    """
    model = make().train()
    inputs = batch(4)
    has_params = bool(list(model.parameters()))
    if not has_params and needs_params:
        raise CheckFailure("the module has no parameters: nothing can be learned")
    if has_params:
        _gradients_reach_every_parameter(model, inputs, loss_of, names)
    model.eval()
    with torch.no_grad():
        for B in (1, 3):
            out = first(call(model, batch(B), f"a batch of size {B}", names))
            if out.shape[0] != B:
                raise CheckFailure(f"with batch size {B} the output has shape "
                                   f"{tuple(out.shape)}; its first dim must be {B} "
                                   f"(a .squeeze() without a dim drops it when B = 1)")
        call_eval(model, batch(3), "a batch of size 3", names)
        big_model, big_inputs = large(model)
        out = call(big_model, big_inputs, "large inputs", names)
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, Tensor) and not torch.isfinite(t).all():
                raise CheckFailure("large inputs give NaN or inf: the softmax overflows; "
                                   "subtract the max (torch.softmax does) and mask with "
                                   "-inf only where a row keeps some allowed position")
    if has_params:
        _overfit(make, inputs, loss_of, steps, lr, drop, names)


def _lazy(model: nn.Module, inputs: tuple, loss_of, names: tuple = ()) -> list[str]:
    model.zero_grad(set_to_none=True)
    loss = loss_of(call(model, inputs, "the forward pass", names), inputs)
    if not loss.requires_grad:
        raise CheckFailure("the output does not depend on any parameter (cut off with "
                           "detach(), torch.no_grad() or .data inside forward?)")
    loss.backward()
    return [n for n, p in model.named_parameters()
            if p.requires_grad and (p.grad is None or not bool(p.grad.any()))]


def _gradients_reach_every_parameter(model: nn.Module, inputs: tuple, loss_of,
                                     names: tuple = ()) -> None:
    """Every parameter gets a gradient; a zero initialisation (e.g. of the output
    projection, which blocks the other gradients at step 0) is not a bug, so a
    parameter without gradient is re-tested on a randomly perturbed copy."""
    lazy = _lazy(model, inputs, loss_of, names)
    if lazy:
        noisy = copy.deepcopy(model)
        with torch.random.fork_rng(devices=rng_devices()), torch.no_grad():
            torch.manual_seed(3)
            for p in noisy.parameters():
                p.add_(torch.randn_like(p) * 0.1)
        lazy = _lazy(noisy, inputs, loss_of, names)
    model.zero_grad(set_to_none=True)
    if lazy:
        raise CheckFailure(f"parameter(s) {', '.join(lazy)} received no gradient: they "
                           f"are created but never used in forward (or cut off with "
                           f"detach / no_grad)")


def _overfit(make, inputs, loss_of, steps, lr, drop, names: tuple = ()) -> None:
    with torch.random.fork_rng(devices=rng_devices()):
        torch.manual_seed(1)
        model = make().train()
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        losses = []
        for _ in range(steps):
            opt.zero_grad()
            loss = loss_of(call(model, inputs, "training", names), inputs)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    if not losses[-1] < drop * losses[0]:
        raise CheckFailure(f"training on one fixed batch for {steps} Adam steps "
                           f"(lr={lr}) took the loss only from {losses[0]:.3f} to "
                           f"{losses[-1]:.3f}; a working model overfits it below "
                           f"{drop:.0%} of the start")


def scaled_copy(model: nn.Module, factor: float) -> nn.Module:
    """A copy of ``model`` with every parameter multiplied by ``factor``."""
    big = copy.deepcopy(model)
    with torch.no_grad():
        for p in big.parameters():
            p.mul_(factor)
    return big
