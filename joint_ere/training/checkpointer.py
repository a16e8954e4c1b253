import functools
import glob
import os
import pickle
import re
from typing import Any, Dict, Optional, Tuple

import torch
from tango.common import FromParams

from joint_ere.common.errors import ConfigurationError, first_line
from joint_ere.common.files import atomic_save


class Checkpointer(FromParams):
    """
    Saves ``model_state_e{N}.th`` and ``training_state_e{N}.th`` after every epoch and keeps the newest
    ``keep_most_recent_by_count`` pairs.
    """

    def __init__(self, serialization_dir: str, keep_most_recent_by_count: Optional[int] = 2) -> None:
        self.serialization_dir = serialization_dir
        self.keep = keep_most_recent_by_count

    def epochs(self) -> list:
        pattern = os.path.join(self.serialization_dir, "training_state_e*.th")
        found = [int(re.search(r"_e(\d+)\.th$", p).group(1)) for p in glob.glob(pattern)]
        return sorted(e for e in found if os.path.exists(self._path("model_state", e)))

    def _path(self, kind: str, epoch: int) -> str:
        return os.path.join(self.serialization_dir, f"{kind}_e{epoch}.th")

    def save(self, epoch: int, model_state: Dict[str, Any], training_state: Dict[str, Any]) -> None:
        # The training state is written last, so a checkpoint counts only once both files are complete.
        for kind, state in (("model_state", model_state), ("training_state", training_state)):
            atomic_save(self._path(kind, epoch), functools.partial(torch.save, state))
        if self.keep is not None:
            for old in self.epochs()[: -self.keep]:
                for kind in ("training_state", "model_state"):
                    os.remove(self._path(kind, old))

    def load_latest(self) -> Optional[Tuple[Dict[str, Any], Dict[str, Any]]]:
        epochs = self.epochs()
        if not epochs:
            return None
        epoch = epochs[-1]
        return self._load("model_state", epoch, weights_only=True), self._load("training_state", epoch, False)

    def _load(self, kind: str, epoch: int, weights_only: bool) -> Dict[str, Any]:
        path = self._path(kind, epoch)
        try:
            state = torch.load(path, map_location="cpu", weights_only=weights_only)
        except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as error:
            raise ConfigurationError(f"--recover: {path} is broken ({first_line(error)}); remove both files of epoch "
                                     f"{epoch + 1} to resume from an earlier checkpoint, or start over with "
                                     f"--force") from None
        if not isinstance(state, dict):
            raise ConfigurationError(f"--recover: {path} is not a checkpoint")
        return state
