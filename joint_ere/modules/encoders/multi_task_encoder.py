"""
The interface between multi-task encoders (SRN, PFN, or one plain encoder shared by every task) and models.

An encoder for ``k`` tasks returns one representation per *task* and one per *shared subset* of two or more
tasks, keyed by name. With the default task names (``e``/``r`` for two tasks, ``e``/``s``/``o`` for three)
the names are the paper's: ``e, r, er`` and ``e, s, o, es, eo, so, eso``. A model says which names it needs
(``check_provides``) and the encoder is then chosen in jsonnet alone.
"""
import itertools
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from allennlp_light.modules import Seq2SeqEncoder
from tango.common import Registrable

from joint_ere.common.errors import ConfigurationError

DEFAULT_TASK_NAMES = {1: ("e",), 2: ("e", "r"), 3: ("e", "s", "o")}


def task_subsets(num_tasks: int) -> List[Tuple[int, ...]]:
    """Every non-empty subset of the tasks, singletons first, then by size: for 3, (0) (1) (2) (0 1) (0 2) (1 2)
    (0 1 2), i.e. e, s, o, es, eo, so, eso."""
    return [subset for size in range(1, num_tasks + 1)
            for subset in itertools.combinations(range(num_tasks), size)]


class MultiTaskEncoder(torch.nn.Module, Registrable):
    """
    Encodes ``(batch, length, input_dim)`` into named ``(batch, length, output_dim)`` representations.

    # Parameters

    num_tasks : `int`
    task_names : `List[str]`, optional
        One name per task; defaults to ``e, r`` (two tasks) or ``e, s, o`` (three). A shared subset's name
        joins its tasks' names (with ``+`` unless every name is one character).
    """

    def __init__(self, num_tasks: int, task_names: Optional[List[str]] = None) -> None:
        super().__init__()
        if num_tasks < 1:
            raise ConfigurationError(f"num_tasks must be at least 1, got {num_tasks}")
        if task_names is None:
            if num_tasks not in DEFAULT_TASK_NAMES:
                raise ConfigurationError(f"task_names: give {num_tasks} names (defaults exist for 1 to 3 tasks)")
            task_names = list(DEFAULT_TASK_NAMES[num_tasks])
        if len(task_names) != num_tasks or len(set(task_names)) != num_tasks:
            raise ConfigurationError(f"task_names: {task_names} must be {num_tasks} distinct names "
                                     f"(num_tasks = {num_tasks})")
        self.num_tasks = num_tasks
        self.task_names = list(task_names)
        joiner = "" if all(len(name) == 1 for name in task_names) else "+"
        self.subsets = task_subsets(num_tasks)
        self.representation_names = [joiner.join(task_names[i] for i in subset) for subset in self.subsets]

    def get_input_dim(self) -> int:
        raise NotImplementedError

    def get_output_dim(self) -> int:
        """The size of every representation."""
        raise NotImplementedError

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor) -> Dict[str, torch.Tensor]:
        raise NotImplementedError

    def check_provides(self, key: str, model: str, num_tasks: int, names: Sequence[str]) -> None:
        """Raise a ConfigurationError naming both sides when this encoder cannot serve ``model``, which needs
        ``num_tasks`` tasks and the representations ``names``."""
        described = f"the {type(self).__name__} encoder (num_tasks = {self.num_tasks}; provides " \
                    f"{', '.join(self.representation_names)})"
        if self.num_tasks != num_tasks:
            raise ConfigurationError(f"{key}: model {model!r} needs num_tasks = {num_tasks}, but {described}")
        missing = [name for name in names if name not in self.representation_names]
        if missing:
            raise ConfigurationError(f"{key}: model {model!r} asks for task {', '.join(map(repr, missing))}, "
                                     f"which {described} does not provide")


@MultiTaskEncoder.register("shared")
class SharedStatesEncoder(MultiTaskEncoder):
    """
    Any Seq2SeqEncoder (e.g. a BiLSTM) behind the multi-task interface: every task and subset sees the same
    states. This is the BiLSTM ablation of the SRN and PFN papers.

    # Parameters

    encoder : `Seq2SeqEncoder`
    num_tasks : `int`, optional (default = `2`)
    task_names : `List[str]`, optional
    """

    def __init__(self, encoder: Seq2SeqEncoder, num_tasks: int = 2, task_names: Optional[List[str]] = None) -> None:
        super().__init__(num_tasks, task_names)
        self.encoder = encoder

    def get_input_dim(self) -> int:
        return self.encoder.get_input_dim()

    def get_output_dim(self) -> int:
        return self.encoder.get_output_dim()

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor) -> Dict[str, torch.Tensor]:
        states = self.encoder(inputs, mask)
        return {name: states for name in self.representation_names}
