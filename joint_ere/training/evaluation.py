"""The one evaluation loop: the trainer's validation, the test split after training, and ``allennlp evaluate``."""
import contextlib
from typing import Any, Callable, ContextManager, Dict, Iterable, Optional

import torch
from tqdm import tqdm

from joint_ere.common import distributed
from joint_ere.models.model import Model

# Shown on the progress bar while batches are scored (whichever the model reports).
PROGRESS_METRICS = ("ner_micro_f1", "re_strict_micro_f1", "re_partial_micro_f1")


def evaluate(model: Model, batches: Iterable[Dict[str, Any]],
             precision: Callable[[], ContextManager[Any]] = contextlib.nullcontext,
             on_output: Optional[Callable[[Dict[str, Any]], None]] = None, per_type: bool = False,
             pool_across_processes: bool = False, description: str = "evaluating", show_progress: bool = True,
             leave: bool = True) -> Dict[str, float]:
    """
    The model's metrics over ``batches`` and ``loss``, the mean batch loss. Each batch runs through the model's
    forward and each labelled batch is then decoded and scored (``model.score_predictions``), both inside
    ``precision()`` (the trainer's autocast, so decoding sees the dtypes forward made). ``on_output`` sees every
    batch's output (to write predictions). ``pool_across_processes``: under torchrun each process scored its
    shard of the batches, and the counts and losses are summed over the processes (every process must call).
    """
    model.eval()
    model.get_metrics(reset=True)
    total, batches_with_loss = None, 0
    bar = tqdm(batches, desc=description, leave=leave, disable=not show_progress, dynamic_ncols=True)
    with torch.inference_mode():
        for batch in bar:
            with precision():
                output = model(**batch)
                if "loss" in output:  # a labelled batch; its loss summed on the device (no sync per batch)
                    model.score_predictions(output)
                    loss = output["loss"].detach().float()
                    total = loss if total is None else total + loss
                    batches_with_loss += 1
            if on_output is not None:
                on_output(output)
            if show_progress:
                running = model.get_metrics()
                bar.set_postfix({k: f"{running[k]:.3f}" for k in PROGRESS_METRICS if k in running}, refresh=False)
    loss_sum = 0.0 if total is None else total.item()
    if pool_across_processes and distributed.world_size() > 1:
        model.sum_metrics_across_processes()
        loss_sum, batches_with_loss = distributed.sum_floats(loss_sum, batches_with_loss)
    metrics = model.get_metrics(reset=True, per_type=per_type)
    metrics["loss"] = loss_sum / max(1, batches_with_loss)
    return metrics
