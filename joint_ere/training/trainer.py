"""
AllenNLP's ``gradient_descent`` trainer, small: epochs of mini-batch steps with gradient accumulation,
clipping and AMP; validation with the model's metrics; early stopping on ``validation_metric``; per-epoch
checkpoints that ``-r`` resumes from exactly (model, optimizer, scheduler, scaler, epoch and RNG states).
Under ``torchrun`` (``joint_ere/common/distributed.py``) the model is wrapped in DistributedDataParallel, each
process trains and validates on its shard of the batches, metrics are pooled over the processes, and rank 0
alone writes the serialization directory.
"""
import contextlib
import datetime
import functools
import logging
import math
import os
import random
import time
from typing import Any, Dict, Iterator, List, Optional, Union

import numpy
import torch
from tango.common import Lazy, Registrable
from tqdm import tqdm

from joint_ere.common import distributed
from joint_ere.common.devices import cpu_has_native_bfloat16, resolve_device
from joint_ere.common.errors import ConfigurationError, DataError, TrainingError, first_line
from joint_ere.common.files import atomic_save, dump_json, read_json
from joint_ere.data.data_loader import DataLoader
from joint_ere.models.model import Model
from joint_ere.training.adversarial import AdversarialTraining
from joint_ere.training.callbacks import DEFAULT_CALLBACKS, TrainerCallback
from joint_ere.training.checkpointer import Checkpointer
from joint_ere.training.evaluation import evaluate
from joint_ere.training.learning_rate_schedulers import LearningRateScheduler
from joint_ere.training.moving_average import MovingAverage
from joint_ere.training.optimizers import AdamOptimizer, Optimizer

logger = logging.getLogger(__name__)



class MetricTracker:
    """Tracks the validation metric for best-model selection and patience."""

    def __init__(self, validation_metric: str, patience: Optional[int]) -> None:
        if not validation_metric or validation_metric[0] not in "+-":
            raise ConfigurationError(f"trainer.validation_metric must start with + or -, not {validation_metric!r}")
        self.name = validation_metric[1:]
        self.should_increase = validation_metric[0] == "+"
        self.patience = patience
        self.best: Optional[float] = None
        self.best_epoch: Optional[int] = None
        self.epochs_without_improvement = 0

    def add(self, value: float, epoch: int) -> bool:
        better = self.best is None or (value > self.best if self.should_increase else value < self.best)
        if better:
            self.best, self.best_epoch, self.epochs_without_improvement = value, epoch, 0
        else:
            self.epochs_without_improvement += 1
        return better

    def should_stop_early(self) -> bool:
        return self.patience is not None and self.epochs_without_improvement >= self.patience

    def state_dict(self) -> Dict[str, Any]:
        return dict(vars(self))

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """The checkpoint's best value and epoch counts; the patience stays the configured one (as AllenNLP's),
        so ``-r -o '{"trainer": {"patience": null}}'`` goes on past an early stop."""
        self.__dict__.update({key: value for key, value in state.items() if key != "patience"})


class Trainer(Registrable):
    default_implementation = "gradient_descent"

    def train(self) -> Dict[str, Any]:
        raise NotImplementedError


@Trainer.register("gradient_descent")
class GradientDescentTrainer(Trainer):
    """
    # Parameters

    optimizer : `Optimizer`, optional (default = adam)
    learning_rate_scheduler : `LearningRateScheduler`, optional
    num_epochs : `int`, optional (default = `20`)
    patience : `int`, optional
        Stop after this many epochs without improvement of ``validation_metric``.
    validation_metric : `str`, optional (default = `"-loss"`)
        ``+name`` to maximise or ``-name`` to minimise a metric of ``get_metrics`` (or ``loss``).
    grad_norm : `float`, optional
        Clip the gradients' total norm to this.
    cuda_device : `int`, optional (default = `-1`, the CPU)
    use_amp : `bool`, optional (default = `False`)
        Mixed precision: autocast to ``amp_dtype``.
    amp_dtype : `str`, optional (default = `"float16"`)
        ``"float16"`` (CUDA only, with gradient scaling) or ``"bfloat16"`` (no gradient scaling: its range is
        float32's; on GPUs that support it, e.g. A100 / H100, and on CPUs).
    num_gradient_accumulation_steps : `int`, optional (default = `1`)
    checkpointer : `Checkpointer`, optional (default = keep the last 2)
    callbacks : `List[TrainerCallback]`, optional (default = `tensorboard` and `validation_plot`)
        Training curves (``joint_ere/training/callbacks.py``); ``[]`` writes none.
    show_progress : `bool`, optional (default = `True`)
        Progress bars of the epochs' training and validation (on the first process only under ``torchrun``).
    moving_average : `MovingAverage`, optional
        A running average of the weights (``{"type": "exponential", "decay": 0.9999}``), updated after every
        optimizer step: validation, ``best.th`` and so the archive use the average; training goes on with the raw
        weights (``joint_ere/training/moving_average.py``).
    adversarial : `AdversarialTraining`, optional
        Adversarial training on the embeddings (Bekoulis et al. 2018: ``{"alpha": 0.05}``): each batch is trained
        on twice, the second time with the embedder's output moved along its loss gradient; on ADE about 1.6
        times the time per epoch (``joint_ere/training/adversarial.py``).
    ddp_find_unused_parameters : `bool`, optional (default = `False`)
        Under ``torchrun``: set it for a model some of whose parameters get no gradient in some steps
        (DistributedDataParallel then looks for them after every forward pass, which costs a little).
    """

    def __init__(self, model: Model, serialization_dir: str, data_loader: DataLoader,
                 validation_data_loader: Optional[DataLoader] = None, optimizer: Lazy[Optimizer] = Lazy(AdamOptimizer),
                 learning_rate_scheduler: Optional[Lazy[LearningRateScheduler]] = None, num_epochs: int = 20,
                 patience: Optional[int] = None, validation_metric: str = "-loss", grad_norm: Optional[float] = None,
                 cuda_device: Optional[Union[int, str]] = None, use_amp: bool = False, amp_dtype: str = "float16",
                 num_gradient_accumulation_steps: int = 1, checkpointer: Lazy[Checkpointer] = Lazy(Checkpointer),
                 callbacks: Optional[List[Lazy[TrainerCallback]]] = None, show_progress: bool = True,
                 moving_average: Optional[Lazy[MovingAverage]] = None,
                 adversarial: Optional[Lazy[AdversarialTraining]] = None,
                 ddp_find_unused_parameters: bool = False) -> None:
        self.device = resolve_device(cuda_device)
        if amp_dtype not in ("float16", "bfloat16"):
            raise ConfigurationError(f"trainer.amp_dtype must be float16 or bfloat16, not {amp_dtype!r}")
        if use_amp and amp_dtype == "float16" and self.device.type != "cuda":
            raise ConfigurationError("trainer.use_amp with float16 needs a CUDA trainer.cuda_device (on a CPU, set "
                                     "trainer.amp_dtype to bfloat16)")
        if use_amp and amp_dtype == "bfloat16" and self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigurationError(f"trainer.amp_dtype: {torch.cuda.get_device_name(self.device)} does not support "
                                     f"bfloat16; use float16")
        if use_amp and amp_dtype == "bfloat16" and self.device.type == "cpu" and not cpu_has_native_bfloat16():
            logger.warning("trainer.amp_dtype bfloat16: this CPU has no native bfloat16 arithmetic (AVX512-BF16 or "
                           "AMX), so autocast emulates it and training is likely slower than in float32")
        if num_gradient_accumulation_steps < 1:
            raise ConfigurationError("trainer.num_gradient_accumulation_steps must be at least 1")
        self.model = model.to(self.device)
        self.serialization_dir = serialization_dir
        self.data_loader = data_loader
        self.validation_data_loader = validation_data_loader
        for loader in (data_loader, validation_data_loader):
            if loader is not None:
                loader.set_target_device(self.device)
        # What trains: the model, or under torchrun its DistributedDataParallel wrapper (which averages the
        # gradients over the processes); validation, metrics and checkpoints use the model itself.
        self.train_module: torch.nn.Module = self.model
        self.primary = distributed.is_primary()
        if distributed.world_size() > 1:
            self.train_module = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=ddp_find_unused_parameters)
            data_loader.set_shard(distributed.rank(), distributed.world_size(), equal=True)
            if validation_data_loader is not None:
                validation_data_loader.set_shard(distributed.rank(), distributed.world_size(), equal=False)
        self.optimizer = optimizer.construct(model_parameters=list(model.named_parameters()))
        # the configured settings of each parameter group, before a scheduler or a checkpoint changes them
        self.optimizer_settings = [{k: v for k, v in group.items() if k != "params"}
                                   for group in self.optimizer.param_groups]
        self.moving_average = moving_average.construct(parameters=list(self.model.named_parameters())) \
            if moving_average else None
        self.adversarial = adversarial.construct(model=self.model) if adversarial else None
        self.tracker = MetricTracker(validation_metric, patience)
        steps_per_epoch = math.ceil(len(data_loader) / num_gradient_accumulation_steps)
        self.scheduler = learning_rate_scheduler.construct(
            optimizer=self.optimizer, num_epochs=num_epochs, num_steps_per_epoch=steps_per_epoch,
            mode="max" if self.tracker.should_increase else "min") if learning_rate_scheduler else None
        self.num_epochs = num_epochs
        self.grad_norm = grad_norm
        self.use_amp = use_amp
        self.amp_dtype = getattr(torch, amp_dtype)
        # float16 needs its gradients scaled into range; bfloat16 has float32's exponent and does not
        self.scaler = torch.amp.GradScaler("cuda") if use_amp and amp_dtype == "float16" else None
        self.accumulation = num_gradient_accumulation_steps
        self.checkpointer = checkpointer.construct(serialization_dir=serialization_dir)
        if callbacks is None:
            callbacks = [Lazy(TrainerCallback.by_name(c["type"])) for c in DEFAULT_CALLBACKS]
        self.callbacks = [callback.construct(serialization_dir=serialization_dir) for callback in callbacks] \
            if self.primary else []
        self.show_progress = show_progress and self.primary
        self.start_epoch = 0
        self.best_validation_metrics: Dict[str, float] = {}
        self.elapsed_before = 0.0

    # -- one epoch ----------------------------------------------------------------------------------------
    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp)

    def _forward(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        """A training step's forward, through ``train_module`` (DDP's wrapper under torchrun); validation runs
        the model itself in ``evaluate``."""
        try:
            with self._autocast():
                return self.train_module(**batch)
        except RuntimeError as error:
            if "find_unused_parameters" in str(error):  # DistributedDataParallel's own advice, in config terms
                raise ConfigurationError(f"some parameters of the model got no gradient in a step, which "
                                         f"DistributedDataParallel must be told: set trainer.ddp_find_unused_"
                                         f"parameters to true ({first_line(error)})") from None
            raise

    def _train_epoch(self, epoch: int) -> Dict[str, float]:
        self.model.train()
        totals: Dict[str, float] = {}
        batches = 0
        bar = tqdm(self.data_loader, desc=f"epoch {epoch + 1}/{self.num_epochs} train", leave=False,
                   disable=not self.show_progress, dynamic_ncols=True)
        self.optimizer.zero_grad(set_to_none=True)
        for index, batch in enumerate(bar):
            stepping = (index + 1) % self.accumulation == 0 or index + 1 == len(self.data_loader)
            # under DDP, gradients are averaged over the processes only in the last backward pass before a step
            # (with adversarial training, the perturbed pass)
            capture = self.adversarial.capture() if self.adversarial else contextlib.nullcontext()
            with self._synced(stepping and not self.adversarial), capture:
                output = self._backward(batch, epoch, index)
            if self.adversarial:
                with self._synced(stepping), self.adversarial.perturb():
                    perturbed = self._backward(batch, epoch, index, "the adversarial loss")
            batches += 1
            losses = {key: output[key].item() for key in ("loss", "ner_loss", "re_loss") if key in output}
            if self.adversarial:
                losses["adversarial_loss"] = perturbed["loss"].item()
                del perturbed
            for key, value in losses.items():
                totals[key] = totals.get(key, 0.0) + value
            learning_rate = self.optimizer.param_groups[0].get("lr")
            if stepping:
                self._step()
            for callback in self.callbacks:
                callback.on_batch(epoch * len(self.data_loader) + index, losses, learning_rate)
            bar.set_postfix({k: f"{v / batches:.4f}" for k, v in totals.items()}, refresh=False)
        if distributed.world_size() > 1:  # the mean over every process's batches
            names = sorted(totals)
            *sums, batches = distributed.sum_floats(*(totals[name] for name in names), batches)
            totals = dict(zip(names, sums))
        return {k: v / max(1, batches) for k, v in totals.items()}

    def _synced(self, sync: bool) -> contextlib.AbstractContextManager:
        """Under torchrun, DDP's ``no_sync`` (no averaging in this backward pass) unless ``sync``; else nothing."""
        if sync or self.train_module is self.model:
            return contextlib.nullcontext()
        return self.train_module.no_sync()

    def _backward(self, batch: Dict[str, Any], epoch: int, index: int, name: str = "the loss") -> Dict[str, Any]:
        """One forward and backward pass of a training batch; gradients add up in the parameters' ``.grad``."""
        output = self._forward(batch)
        loss = output["loss"] / self.accumulation
        if not torch.isfinite(loss):
            raise TrainingError(f"epoch {epoch + 1}, batch {index + 1}: {name} is {loss.item()}; "
                                f"stopped. {self._what_is_kept()}")
        (self.scaler.scale(loss) if self.scaler else loss).backward()
        return output

    def _what_is_kept(self) -> str:
        epochs = self.checkpointer.epochs()
        if not epochs:
            return "No epoch has finished, so there is no checkpoint to resume from."
        best = " and best.th are" if self.tracker.best_epoch is not None else " is"
        return (f"The checkpoint of epoch {epochs[-1] + 1}{best} kept in {self.serialization_dir}: "
                f"-r resumes from it (a lower learning rate or trainer.grad_norm may help, e.g. with -o).")

    def _step(self) -> None:
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if self.grad_norm:
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.grad is not None], self.grad_norm)
        stepped = True
        if self.scaler:
            watch = self.moving_average is not None  # get_scale() waits for the GPU: only when it matters
            scale = self.scaler.get_scale() if watch else 0.0
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if watch:  # a lower scale: the step was skipped (inf or NaN gradients), so the weights did not change
                stepped = self.scaler.get_scale() >= scale
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.moving_average and stepped:
            self.moving_average.apply()
        if self.scheduler:
            self.scheduler.step_batch()

    @contextlib.contextmanager
    def _averaged_weights(self) -> Iterator[None]:
        """The moving average's weights in the model for validation and ``best.th``; the trained ones after."""
        if self.moving_average is None:
            yield
            return
        try:
            self.moving_average.assign_average_value()
            yield
        finally:
            self.moving_average.restore()

    def _validate(self, epoch: int) -> Dict[str, float]:
        return evaluate(self.model, self.validation_data_loader, precision=self._autocast, pool_across_processes=True,
                        description=f"epoch {epoch + 1}/{self.num_epochs} validation",
                        show_progress=self.show_progress, leave=False)

    # -- the loop -----------------------------------------------------------------------------------------
    def train(self) -> Dict[str, Any]:
        for callback in self.callbacks:
            callback.on_start(self.start_epoch, len(self.data_loader))
        try:
            return self._train()
        finally:
            if self.adversarial:  # the model that is tested and archived carries no training hook
                self.adversarial.remove()
            for callback in self.callbacks:
                callback.on_end()

    def _train(self) -> Dict[str, Any]:
        started = time.time()
        metrics: Dict[str, Any] = {}
        last_metrics = os.path.join(self.serialization_dir, f"metrics_epoch_{self.start_epoch - 1}.json")
        if self.start_epoch > 0 and os.path.exists(last_metrics):
            try:
                metrics = read_json(last_metrics)
            except DataError as error:
                raise ConfigurationError(f"--recover: {last_metrics} is broken ({error})") from None
        stopped_early = self.validation_data_loader is not None and self.tracker.should_stop_early()
        for epoch in range(self.start_epoch, self.num_epochs if not stopped_early else self.start_epoch):
            epoch_started = time.time()
            train_metrics = self._train_epoch(epoch)
            with self._averaged_weights():
                validation_metrics = self._validate(epoch) if self.validation_data_loader is not None else {}
                if not math.isfinite(validation_metrics.get("loss", 0.0)):
                    # Weights that give a NaN are never saved as best.th or as a checkpoint to resume from.
                    validated = " (the moving average of the weights)" if self.moving_average else ""
                    raise TrainingError(f"epoch {epoch + 1}: the validation loss{validated} is "
                                        f"{validation_metrics['loss']} (the training loss was finite); stopped, the "
                                        f"weights of this epoch are not saved. {self._what_is_kept()}")
                if validation_metrics:
                    if self.tracker.name not in validation_metrics:
                        raise ConfigurationError(f"trainer.validation_metric: {self.tracker.name!r} is not one of "
                                                 f"{sorted(validation_metrics)}")
                    value = validation_metrics[self.tracker.name]
                    is_best = self.tracker.add(value, epoch)
                else:
                    value, is_best = None, True
                    self.tracker.best_epoch = epoch
                if is_best:
                    self.best_validation_metrics = validation_metrics
                if is_best and self.primary:
                    atomic_save(os.path.join(self.serialization_dir, "best.th"),
                                functools.partial(torch.save, self.model.state_dict()))
            elapsed = self.elapsed_before + time.time() - started
            metrics = {
                "epoch": epoch,
                "best_epoch": self.tracker.best_epoch,
                "training_duration": str(datetime.timedelta(seconds=round(elapsed))),
                "training_seconds": round(elapsed, 2),
                "epoch_seconds": round(time.time() - epoch_started, 2),
                **{f"training_{k}": v for k, v in train_metrics.items()},
                **{f"validation_{k}": v for k, v in validation_metrics.items()},
                **{f"best_validation_{k}": v for k, v in self.best_validation_metrics.items()},
            }
            if self.primary:
                dump_json(metrics, os.path.join(self.serialization_dir, f"metrics_epoch_{epoch}.json"))
            for callback in self.callbacks:
                callback.on_epoch(epoch, train_metrics, validation_metrics)
            summary = ", ".join(f"{k}={v:.4f}" for k, v in validation_metrics.items()
                                if k in ("loss", "ner_macro_f1", "re_strict_macro_f1", self.tracker.name))
            logger.info("epoch %d/%d: training loss %.4f; validation %s; %.1fs", epoch + 1, self.num_epochs,
                        train_metrics.get("loss", float("nan")), summary or "-", metrics["epoch_seconds"])
            if self.scheduler:
                self.scheduler.step(value)
            if self.primary:
                self.checkpointer.save(epoch, self.model.state_dict(), self._training_state(epoch, elapsed))
            if validation_metrics and self.tracker.should_stop_early():
                logger.info("no improvement of %s for %d epochs: stopping", self.tracker.name,
                            self.tracker.epochs_without_improvement)
                break
        best_path = os.path.join(self.serialization_dir, "best.th")
        distributed.barrier()  # rank 0 has written best.th
        if os.path.exists(best_path):
            self.model.load_state_dict(torch.load(best_path, map_location=self.device, weights_only=True))
        return metrics

    def _training_state(self, epoch: int, elapsed: float) -> Dict[str, Any]:
        return {
            "epoch": epoch,
            "elapsed": elapsed,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "moving_average": self.moving_average.state_dict() if self.moving_average else None,
            "tracker": self.tracker.state_dict(),
            "best_validation_metrics": self.best_validation_metrics,
            "rng": {"python": random.getstate(), "numpy": numpy.random.get_state(), "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
        }

    def restore_checkpoint(self, optimizer_change: Optional[str] = None) -> bool:
        """
        Loads the newest checkpoint, if any; training then starts at the epoch after it. When the resumed run
        configures another optimizer (``-r -o '{"trainer": {"optimizer": {"lr": ...}}}'``), ``optimizer_change``
        says how: ``"settings"`` keeps the optimizer's state (e.g. Adam's moments) under the configured settings,
        ``"optimizer"`` (another type or other parameter groups) starts it afresh; either way step schedulers
        restart their curve from the configured learning rates.
        """
        loaded = self.checkpointer.load_latest()
        if loaded is None:
            return False
        model_state, state = loaded
        try:
            self.model.load_state_dict(model_state)
            if optimizer_change != "optimizer":
                self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError) as error:
            raise ConfigurationError(f"--recover: the checkpoint does not fit the configured model or optimizer "
                                     f"(was model or trainer.optimizer changed?): {first_line(error)}") from None
        if self.scheduler and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if optimizer_change:
            for group, settings in zip(self.optimizer.param_groups, self.optimizer_settings):
                group.update(settings)
            if self.scheduler:
                self.scheduler.restart_from_optimizer()
            logger.warning("trainer.optimizer differs from the checkpoint's: resuming with the configured settings")
        if self.scaler and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        if self.moving_average:
            if state.get("moving_average") is None:
                raise ConfigurationError("--recover: the checkpoint was trained without trainer.moving_average, "
                                         "which the config now asks for; start over with --force")
            self.moving_average.load_state_dict(state["moving_average"])
        elif state.get("moving_average") is not None:
            logger.warning("--recover: the checkpoint kept a moving average of the weights, which the config no "
                           "longer asks for: it is dropped, and later epochs are validated on the trained weights")
        self.tracker.load_state_dict(state["tracker"])
        self.best_validation_metrics = state["best_validation_metrics"]
        self.elapsed_before = state["elapsed"]
        rng = state["rng"]
        random.setstate(rng["python"])
        numpy.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.start_epoch = state["epoch"] + 1
        logger.info("recovered from the checkpoint of epoch %d", state["epoch"] + 1)
        return True
