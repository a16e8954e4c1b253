"""
AllenNLP's ``trainer.moving_average``: a running average of the model's weights, kept beside the weights that
train. The trainer validates with the average, saves it as ``best.th`` (so the archive, ``evaluate`` and
``predict`` use it) and trains on with the raw weights; ``-r`` resumes both exactly.

    "trainer": {"moving_average": {"type": "exponential", "decay": 0.9999}}
"""
import logging
from typing import Any, Dict, Iterable, List, Tuple

import torch
from tango.common import Registrable

from joint_ere.common.errors import ConfigurationError

logger = logging.getLogger(__name__)


class MovingAverage(Registrable):
    """Shadow copies of the trainable parameters, updated after every optimizer step (``apply``), swapped into the
    model for validation (``assign_average_value``) and swapped out again (``restore``)."""

    default_implementation = "exponential"

    def __init__(self, parameters: Iterable[Tuple[str, torch.nn.Parameter]]) -> None:
        named = [(name, parameter) for name, parameter in parameters if parameter.requires_grad]
        self.names: List[str] = [name for name, _ in named]
        self.parameters: List[torch.nn.Parameter] = [parameter for _, parameter in named]
        self.shadows: List[torch.Tensor] = [parameter.detach().clone() for parameter in self.parameters]
        self.backups: List[torch.Tensor] = []
        self.num_updates = 0

    def decay(self) -> float:
        raise NotImplementedError

    @torch.no_grad()
    def apply(self) -> None:
        """After an optimizer step: shadow ← decay · shadow + (1 − decay) · parameter."""
        self.num_updates += 1
        if self.parameters:
            torch._foreach_lerp_(self.shadows, [p.detach() for p in self.parameters], 1.0 - self.decay())

    @torch.no_grad()
    def assign_average_value(self) -> None:
        """Puts the averages into the model; ``restore`` puts the trained weights back."""
        if self.backups:
            raise RuntimeError("moving_average: the averages are already assigned")
        self.backups = [parameter.detach().clone() for parameter in self.parameters]
        for parameter, shadow in zip(self.parameters, self.shadows):
            parameter.copy_(shadow)

    @torch.no_grad()
    def restore(self) -> None:
        """The trained weights back after ``assign_average_value`` (nothing to do without it)."""
        for parameter, backup in zip(self.parameters, self.backups):
            parameter.copy_(backup)
        self.backups = []

    def state_dict(self) -> Dict[str, Any]:
        return {"num_updates": self.num_updates, "shadows": dict(zip(self.names, self.shadows))}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """The saved averages of the parameters that train now. A parameter that trains now and did not then (``-r``
        with other ``parameter_groups``) starts its average from its current weights; one that no longer trains
        is dropped. Both are logged."""
        shadows = state["shadows"]
        with torch.no_grad():
            for name, shadow in zip(self.names, self.shadows):
                if name in shadows:
                    shadow.copy_(shadows[name])
        started, dropped = sorted(set(self.names) - set(shadows)), sorted(set(shadows) - set(self.names))
        if started or dropped:
            logger.warning("trainer.moving_average: the trainable parameters changed since the checkpoint; averages "
                           "started afresh for %s, dropped for %s", started or "none", dropped or "none")
        self.num_updates = state["num_updates"]


@MovingAverage.register("exponential")
class ExponentialMovingAverage(MovingAverage):
    """
    An exponential moving average whose decay starts small (AllenNLP's and TensorFlow's rule): after n updates
    the decay is ``min(decay, (numerator + n) / (denominator + n))``, so the average is not stuck at the
    initial weights early in training and later covers about the last ``n / (denominator - numerator)`` steps
    until it reaches ``1 / (1 - decay)`` steps.

    decay : `float`, optional (default = `0.9999`)
    numerator : `float`, optional (default = `1.0`)
    denominator : `float`, optional (default = `10.0`)
    """

    def __init__(self, parameters: Iterable[Tuple[str, torch.nn.Parameter]], decay: float = 0.9999,
                 numerator: float = 1.0, denominator: float = 10.0) -> None:
        if not 0.0 <= decay < 1.0:
            raise ConfigurationError(f"trainer.moving_average.decay must be in [0, 1), not {decay}")
        if denominator <= 0 or numerator < 0:
            raise ConfigurationError("trainer.moving_average: numerator must be >= 0 and denominator > 0")
        super().__init__(parameters)
        self._decay, self.numerator, self.denominator = decay, numerator, denominator

    def decay(self) -> float:
        return min(self._decay, (self.numerator + self.num_updates) / (self.denominator + self.num_updates))
