"""
Registrable optimizers taking AllenNLP's ``parameter_groups``: a list of ``[[regex, ...], {overrides}]``; each
parameter goes to the first group with a regex that matches its name (``re.search``), the rest to a last
group with the optimizer's defaults. A group with ``{"requires_grad": false}`` freezes its parameters.
"""
import logging
import re
from typing import Any, Dict, List, Optional, Tuple

import torch
from tango.common import Registrable

from joint_ere.common.errors import ConfigurationError

logger = logging.getLogger(__name__)

ParameterGroups = Optional[List[Tuple[List[str], Dict[str, Any]]]]


def make_parameter_groups(model_parameters: List[Tuple[str, torch.nn.Parameter]],
                          groups: ParameterGroups) -> List[Dict[str, Any]]:
    if not groups:
        return [{"params": [p for _, p in model_parameters if p.requires_grad]}]
    built: List[Dict[str, Any]] = [{"params": [], **dict(options)} for _, options in groups] + [{"params": []}]
    used = [False] * len(groups)
    for name, parameter in model_parameters:
        for index, (regexes, _) in enumerate(groups):
            if any(re.search(regex, name) for regex in regexes):
                built[index]["params"].append(parameter)
                used[index] = True
                break
        else:
            built[-1]["params"].append(parameter)
    for index, (regexes, _) in enumerate(groups):
        if not used[index]:
            raise ConfigurationError(f"trainer.optimizer.parameter_groups.{index}: {regexes} match no parameter")
    result = []
    for group in built:
        # A group's `requires_grad` freezes (or unfreezes) its parameters; without it they stay as the model made
        # them, so a frozen transformer or a `trainable: false` embedding is not unfrozen by grouping.
        requires_grad = group.pop("requires_grad", None)
        if requires_grad is not None:
            for parameter in group["params"]:
                parameter.requires_grad_(requires_grad)
        group["params"] = [p for p in group["params"] if p.requires_grad]
        if group["params"]:
            result.append(group)
    return result


class Optimizer(torch.optim.Optimizer, Registrable):
    default_implementation = "adam"


def fused_by_default(groups: List[Dict[str, Any]]) -> bool:
    """Adam's fused kernel (one pass over each parameter instead of a dozen operations) where torch has it: every
    parameter floating-point, on the CPU or CUDA. On the 2-core CPU it made a CoNLL04 training step about 4%
    faster (RESULTS.md); torch itself still defaults to the loop there."""
    return all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for group in groups for p in group["params"])


@Optimizer.register("adam")
class AdamOptimizer(Optimizer, torch.optim.Adam):
    def __init__(self, model_parameters: List[Tuple[str, torch.nn.Parameter]], parameter_groups: ParameterGroups = None,
                 lr: float = 0.001, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, fused: Optional[bool] = None) -> None:
        groups = make_parameter_groups(model_parameters, parameter_groups)
        torch.optim.Adam.__init__(self, groups, lr=lr, fused=fused_by_default(groups) if fused is None else fused,
                                  betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


@Optimizer.register("adamw")
class AdamWOptimizer(Optimizer, torch.optim.AdamW):
    def __init__(self, model_parameters: List[Tuple[str, torch.nn.Parameter]], parameter_groups: ParameterGroups = None,
                 lr: float = 0.001, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, amsgrad: bool = False, fused: Optional[bool] = None) -> None:
        groups = make_parameter_groups(model_parameters, parameter_groups)
        torch.optim.AdamW.__init__(self, groups, lr=lr, fused=fused_by_default(groups) if fused is None else fused,
                                   betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


@Optimizer.register("sgd")
class SgdOptimizer(Optimizer, torch.optim.SGD):
    def __init__(self, model_parameters: List[Tuple[str, torch.nn.Parameter]], lr: float,
                 parameter_groups: ParameterGroups = None, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        torch.optim.SGD.__init__(self, make_parameter_groups(model_parameters, parameter_groups), lr=lr,
                                 momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)
