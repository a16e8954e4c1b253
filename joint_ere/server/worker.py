"""
The model in a process of its own, for ``allennlp serve``: the server's event loop (HTTP, tokenising, JSON) and
the model then do not share one GIL. The worker loads the archive itself (``load``, the pool's initializer)
and answers ``predict`` calls with the predictor's outputs; inputs and outputs cross the process boundary
pickled, which costs far less than the model's own Python.
"""
import concurrent.futures
import functools
import importlib
import multiprocessing
from typing import Any, Dict, List, Optional, Sequence

from joint_ere.predictors.predictor import PredictionInput, Predictor

_predictor: Optional[Predictor] = None


def load(archive_file: str, cuda_device: int, overrides: str, use_amp: bool, predictor_name: Optional[str],
         batch_size: int, threads: int, packages: Sequence[str]) -> None:
    global _predictor
    import torch

    import joint_ere  # noqa: F401  (registers the built-in classes)

    torch.set_num_threads(threads)
    for package in packages:  # --include-package, for classes registered outside joint_ere
        importlib.import_module(package)
    _predictor = Predictor.from_path(archive_file, cuda_device=cuda_device, predictor_name=predictor_name,
                                     overrides=overrides, use_amp=use_amp)
    _predictor.batch_size = batch_size


def predict(inputs: Sequence[PredictionInput]) -> List[Dict[str, Any]]:
    assert _predictor is not None, "the worker was started without load()"
    return _predictor.predict_inputs(inputs)


def process_executor(**settings: Any) -> concurrent.futures.ProcessPoolExecutor:
    """A pool of one spawned process running ``load(**settings)`` first (spawn: CUDA cannot be forked)."""
    return concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                                  initializer=functools.partial(load, **settings))
