"""
Trainer callbacks (AllenNLP's ``trainer.callbacks``): hooks the trainer calls after each batch, after each epoch
and at the end of training. The default list is ``[{"type": "tensorboard"}, {"type": "validation_plot"}]``;
``"callbacks": []`` turns both off.

- ``tensorboard``: event files under ``SERIALIZATION_DIR/log/train`` and ``log/validation`` (``tensorboard
  --logdir runs/x/log``): per step the training losses and the learning rate (``batch/*``); per epoch every
  training and validation metric under the same tag (``epoch/*``), so the two runs overlay in one chart.
- ``validation_plot``: ``SERIALIZATION_DIR/validation_curves.png`` at the end of training, drawn from the
  ``metrics_epoch_*.json`` files (so a run resumed with ``-r`` is drawn whole): the F1 scores on validation
  per epoch, and the training and validation loss.
"""
import glob
import logging
import os
import re
from typing import Any, Dict, List, Optional

from tango.common import Registrable

from joint_ere.common.files import atomic_save, read_json

logger = logging.getLogger(__name__)


class TrainerCallback(Registrable):
    def __init__(self, serialization_dir: str) -> None:
        self.serialization_dir = serialization_dir

    def on_start(self, start_epoch: int, steps_per_epoch: int) -> None:
        """Before the first epoch of this run (``start_epoch`` > 0 when resumed with ``-r``)."""

    def on_batch(self, step: int, losses: Dict[str, float], learning_rate: Optional[float]) -> None:
        """After each training batch; ``step`` counts batches from the start of training, across resumes."""

    def on_epoch(self, epoch: int, training: Dict[str, float], validation: Dict[str, float]) -> None:
        """After each epoch, with the epoch's training and validation metrics."""

    def on_end(self) -> None:
        """After the last epoch (also after early stopping)."""


@TrainerCallback.register("tensorboard")
class TensorBoardCallback(TrainerCallback):
    """
    Parameters
    ----------
    batch_interval : `int`, optional (default = `1`)
        Write the per-step values every this many batches.
    """

    def __init__(self, serialization_dir: str, batch_interval: int = 1) -> None:
        super().__init__(serialization_dir)
        self.batch_interval = max(1, batch_interval)
        self.writers: Dict[str, Any] = {}

    def on_start(self, start_epoch: int, steps_per_epoch: int) -> None:
        from tensorboardX import SummaryWriter

        # A resumed run drops whatever the interrupted one wrote after its last checkpoint. Its file gets its own
        # name: tensorboardX names files by the second, and a quick resume would otherwise overwrite the first.
        purge = start_epoch * steps_per_epoch if start_epoch > 0 else None
        for split in ("train", "validation"):
            self.writers[split] = SummaryWriter(os.path.join(self.serialization_dir, "log", split),
                                                purge_step=purge, flush_secs=30,
                                                filename_suffix=f".from_epoch_{start_epoch + 1}")

    def on_batch(self, step: int, losses: Dict[str, float], learning_rate: Optional[float]) -> None:
        if step % self.batch_interval:
            return
        writer = self.writers["train"]
        for key, value in losses.items():
            writer.add_scalar(f"batch/{key}", value, step)
        if learning_rate is not None:
            writer.add_scalar("batch/learning_rate", learning_rate, step)

    def on_epoch(self, epoch: int, training: Dict[str, float], validation: Dict[str, float]) -> None:
        for split, metrics in (("train", training), ("validation", validation)):
            for key, value in metrics.items():
                self.writers[split].add_scalar(f"epoch/{key}", value, epoch + 1)
            self.writers[split].flush()

    def on_end(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers = {}


@TrainerCallback.register("validation_plot")
class ValidationPlotCallback(TrainerCallback):
    """``validation_curves.png``: validation F1 per epoch (left) and the losses (right), best epoch marked."""

    def __init__(self, serialization_dir: str, file_name: str = "validation_curves.png") -> None:
        super().__init__(serialization_dir)
        self.file_name = file_name

    def on_end(self) -> None:
        epochs = epoch_metrics(self.serialization_dir)
        if not epochs:
            return
        try:
            plot_curves(epochs, os.path.join(self.serialization_dir, self.file_name))
        except Exception as error:  # a figure must never fail a finished training run
            logger.warning("could not draw %s: %s", self.file_name, error)


def epoch_metrics(serialization_dir: str) -> List[Dict[str, Any]]:
    """The ``metrics_epoch_{N}.json`` files of a serialization directory, in epoch order."""
    found = []
    for path in glob.glob(os.path.join(serialization_dir, "metrics_epoch_*.json")):
        match = re.search(r"metrics_epoch_(\d+)\.json$", path)
        if match:
            found.append((int(match.group(1)), path))
    return [read_json(path) for _, path in sorted(found)]


def plot_curves(epochs: List[Dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    numbers = [m["epoch"] + 1 for m in epochs]
    scores = sorted(k for k in epochs[-1] if k.startswith("validation_") and k.endswith("_f1"))
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for key in scores:
        left.plot(numbers, [100 * m.get(key, float("nan")) for m in epochs], marker=".",
                  label=key[len("validation_"):])
    best = epochs[-1].get("best_epoch")
    for axis in (left, right):
        if best is not None:
            axis.axvline(best + 1, color="grey", linestyle=":", label="best epoch")
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
    left.set_ylabel("F1 (%)")
    left.set_title("validation")
    for key, label in (("training_loss", "training loss"), ("validation_loss", "validation loss")):
        if key in epochs[-1]:
            right.plot(numbers, [m.get(key, float("nan")) for m in epochs], marker=".", label=label)
    right.set_title("loss")
    for axis in (left, right):
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    figure.tight_layout()
    try:
        atomic_save(path, lambda temporary: figure.savefig(temporary, dpi=100, format="png"))
    finally:
        plt.close(figure)


DEFAULT_CALLBACKS = [{"type": "tensorboard"}, {"type": "validation_plot"}]
