"""
Adversarial training on the word representations (Bekoulis et al. 2018, "Adversarial training for multi-context
joint entity and relation extraction", after Miyato et al. 2017): every training batch is seen twice, as it is and
with the output w of the model's embedder moved a small step in the direction that raises the loss fastest,

    η_adv = ε · g / ‖g‖,   g = ∇_w L(w; θ),   ε = α · √D          (D = w's width)

and the gradient of L(w; θ) + L(w + η_adv; θ) trains the model; η_adv is a constant of the second pass. ‖g‖ is
taken per sentence, so ε does not depend on the batch size (nor on how torchrun shards a batch).

    "trainer": {"adversarial": {"alpha": 0.05}}          (training_config/ade.jsonnet; RESULTS.md)
"""
import contextlib
import math
from typing import Any, Iterator, List, Optional

import torch
from tango.common import Registrable

from joint_ere.common.errors import ConfigurationError


class AdversarialTraining(Registrable):
    """Perturbs the output of one submodule of the model (by default its ``text_field_embedder``) in a second
    forward pass of each training batch. The trainer runs the first pass inside ``capture()``, its backward, then
    the second pass inside ``perturb()`` and its backward; gradients of both passes add up before the step."""

    default_implementation = "fast_gradient"

    def __init__(self, model: torch.nn.Module, module: str = "text_field_embedder") -> None:
        try:
            target = model.get_submodule(module)
        except AttributeError:
            raise ConfigurationError(f"trainer.adversarial.module: the model ({type(model).__name__}) has no "
                                     f"submodule {module!r}") from None
        self.module_name = module
        self._mode: Optional[str] = None
        self._outputs: List[torch.Tensor] = []  # w of every call of the module in the captured pass
        self._perturbations: List[torch.Tensor] = []
        self._calls = 0
        self._handle: Optional[torch.utils.hooks.RemovableHandle] = target.register_forward_hook(self._hook)

    def remove(self) -> None:
        """Takes the hook off the model (the trainer does when training ends)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def perturbation(self, embedded: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
        """η for an output ``embedded`` of the module whose loss gradient is ``gradient`` (same shape)."""
        raise NotImplementedError

    def _hook(self, module: torch.nn.Module, inputs: Any, output: Any) -> Any:
        if self._mode is None or not torch.is_tensor(output) or not torch.is_grad_enabled():
            return None
        if self._mode == "capture":
            if not output.requires_grad:  # a frozen embedder: w is still perturbed, so its gradient is needed
                output = output.detach().requires_grad_()
            output.retain_grad()
            self._outputs.append(output)
            return output
        if self._calls >= len(self._perturbations):
            raise RuntimeError(f"trainer.adversarial: {self.module_name} ran more often in the perturbed pass than "
                               f"in the first ({len(self._perturbations)})")
        perturbation = self._perturbations[self._calls]
        self._calls += 1
        return output + perturbation.to(output.dtype)

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        """The first pass (forward and backward): remembers the module's outputs and their gradients."""
        self._outputs, self._mode = [], "capture"
        try:
            yield
        finally:
            self._mode = None

    @contextlib.contextmanager
    def perturb(self) -> Iterator[None]:
        """The second pass: the module's outputs plus η_adv, from the gradients of the captured pass."""
        if not self._outputs:
            raise RuntimeError(f"trainer.adversarial: {self.module_name} did not run in the first pass")
        with torch.no_grad():
            self._perturbations = [self.perturbation(output, output.grad if output.grad is not None
                                                     else torch.zeros_like(output))
                                   for output in self._outputs]
        self._outputs, self._calls, self._mode = [], 0, "perturb"
        try:
            yield
            if self._calls != len(self._perturbations):
                raise RuntimeError(f"trainer.adversarial: {self.module_name} ran {self._calls} times in the "
                                   f"perturbed pass and {len(self._perturbations)} in the first")
        finally:
            self._mode, self._perturbations = None, []


@AdversarialTraining.register("fast_gradient")
class FastGradientPerturbation(AdversarialTraining):
    """
    η_adv = α √D · g / ‖g‖ for each sentence (Bekoulis 2018; Goodfellow et al.'s fast gradient method with an L2
    norm). Bekoulis searched α in {5e-2, 1e-2, 1e-3}.

    # Parameters

    alpha : `float`
        The perturbation's size per √dimension.
    module : `str`, optional (default = `"text_field_embedder"`)
        The submodule of the model whose output is perturbed (a dotted path, e.g. ``text_field_embedder.token_
        embedders.tokens`` for the words alone).
    """

    def __init__(self, model: torch.nn.Module, alpha: float, module: str = "text_field_embedder") -> None:
        if alpha < 0:
            raise ConfigurationError(f"trainer.adversarial.alpha must not be negative, not {alpha}")
        super().__init__(model, module)
        self.alpha = alpha

    def perturbation(self, embedded: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
        # a step of float16 training whose gradients overflowed is skipped by the scaler anyway; keep η finite
        gradient = torch.nan_to_num(gradient.float(), nan=0.0, posinf=0.0, neginf=0.0)
        norms = gradient.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (gradient.dim() - 1)))
        return self.alpha * math.sqrt(embedded.size(-1)) * gradient / norms
