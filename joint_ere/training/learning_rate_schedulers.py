"""Learning-rate schedulers with one interface: ``step_batch()`` after every optimizer step, ``step(metric)``
after every epoch's validation, and ``state_dict`` for recovery."""
from typing import Any, Dict, Optional

import torch
from tango.common import Registrable

from joint_ere.common.errors import ConfigurationError


class LearningRateScheduler(Registrable):
    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    def step_batch(self) -> None:
        pass

    def step(self, metric: Optional[float] = None) -> None:
        pass

    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        pass

    def restart_from_optimizer(self) -> None:
        """Called when a resumed run's optimizer settings replace the checkpoint's (``-r`` with a new ``lr``)."""


@LearningRateScheduler.register("reduce_on_plateau")
class ReduceOnPlateau(LearningRateScheduler):
    """
    Multiplies the learning rate by ``factor`` once the validation metric has not improved for ``patience``
    epochs. The direction (``mode``) follows the trainer's ``validation_metric`` sign.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, mode: str = "max", factor: float = 0.5, patience: int = 2,
                 threshold: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0) -> None:
        super().__init__(optimizer)
        self.inner = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=factor, patience=patience,
                                                                threshold=threshold, cooldown=cooldown, min_lr=min_lr)

    def step(self, metric: Optional[float] = None) -> None:
        if metric is None:
            raise ConfigurationError("trainer.learning_rate_scheduler: reduce_on_plateau needs validation data")
        self.inner.step(metric)

    def state_dict(self) -> Dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.inner.load_state_dict(state)


class _StepScheduler(LearningRateScheduler):
    """A multiplier of each group's initial learning rate as a function of the optimizer step."""

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int) -> None:
        super().__init__(optimizer)
        self.total_steps = max(1, total_steps)
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.steps = 0
        self._apply()

    def factor(self, step: int) -> float:
        raise NotImplementedError

    def _apply(self) -> None:
        factor = self.factor(self.steps)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor

    def step_batch(self) -> None:
        self.steps += 1
        self._apply()

    def state_dict(self) -> Dict[str, Any]:
        return {"steps": self.steps, "base_lrs": self.base_lrs}

    def restart_from_optimizer(self) -> None:
        self.base_lrs = [group["lr"] for group in self.optimizer.param_groups]
        self._apply()

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.steps, self.base_lrs = state["steps"], state["base_lrs"]
        self._apply()


@LearningRateScheduler.register("linear_with_warmup")
class LinearWithWarmup(_StepScheduler):
    """Linear warm-up over ``warmup_steps`` optimizer steps, then linear decay to 0 at the end of training."""

    def __init__(self, optimizer: torch.optim.Optimizer, num_epochs: int, num_steps_per_epoch: int,
                 warmup_steps: int = 100) -> None:
        self.warmup_steps = warmup_steps
        super().__init__(optimizer, num_epochs * num_steps_per_epoch)

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        return max(0.0, (self.total_steps - step) / max(1, self.total_steps - self.warmup_steps))


@LearningRateScheduler.register("slanted_triangular")
class SlantedTriangular(_StepScheduler):
    """
    Howard & Ruder's slanted triangular rate: a linear rise over the first ``cut_frac`` of the optimizer steps
    from ``1/ratio`` of each group's rate to the full rate, then a linear fall back to ``1/ratio``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, num_epochs: int, num_steps_per_epoch: int,
                 cut_frac: float = 0.1, ratio: int = 32) -> None:
        if not 0 < cut_frac < 1:
            raise ConfigurationError("trainer.learning_rate_scheduler.cut_frac must lie between 0 and 1")
        self.cut_frac = cut_frac
        self.ratio = ratio
        super().__init__(optimizer, num_epochs * num_steps_per_epoch)

    def factor(self, step: int) -> float:
        cut = max(1, int(self.total_steps * self.cut_frac))
        rise = step / cut if step < cut else 1 - (step - cut) / max(1, self.total_steps - cut)
        return (1 + max(0.0, rise) * (self.ratio - 1)) / self.ratio
