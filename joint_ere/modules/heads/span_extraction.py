r"""
The span extraction head of Cascade-SRN (Wang et al., appendix A), used three times by the cascade: for entities
(typed by entity type), subjects (one label) and objects (typed by relation). For each label k and tokens i <= j:

    eq. 12   p_start(i, k) = sigmoid(W_st,k h_i + b_st,k)          p_end(j, k) = sigmoid(W_en,k h_j + b_en,k)
    eq. 13   p_match(i, j, k) = sigmoid(W_m,k [h_i; h_j] + b_m,k)
    eq. 14   L_st, L_en, L_m: binary cross-entropy summed over tokens (and token pairs i <= j) and labels
    eq. 15   L = alpha L_st + beta L_en + gamma L_m

W_m,k [h_i; h_j] is computed as W_row,k h_i + W_col,k h_j, so the (T x T x labels) match table is a broadcast
sum and no (T x T x 2d) concatenation is ever built. A span (i, j, k) is predicted when token i is a start of k,
token j an end of k, and the pair matches; its score is p_match(i, j, k). Spans may nest and overlap.
"""
from typing import Dict, List, Optional, Tuple

import torch
from tango.common import FromParams

from joint_ere.common.targets import mark_cells

Span = Tuple[int, int, int, float]  # start, end (exclusive), label, score


class SpanExtractionHead(torch.nn.Module, FromParams):
    """
    # Parameters

    input_dim : `int`
        Size of the token representations (given by the model).
    num_labels : `int`
        Entity types, 1 for subjects, relation types for objects (given by the model).
    start_weight, end_weight, match_weight : `float`, optional (default = `1.0`)
        alpha, beta, gamma of eq. 15.
    start_threshold, end_threshold, match_threshold : `float`, optional (default = `0.5`)
        Probabilities above which a token is a start or an end, and a pair a match.
    """

    def __init__(self, input_dim: int, num_labels: int, start_weight: float = 1.0, end_weight: float = 1.0,
                 match_weight: float = 1.0, start_threshold: float = 0.5, end_threshold: float = 0.5,
                 match_threshold: float = 0.5) -> None:
        super().__init__()
        self.num_labels = max(1, num_labels)
        self.start = torch.nn.Linear(input_dim, self.num_labels)  # W_st, b_st (eq. 12)
        self.end = torch.nn.Linear(input_dim, self.num_labels)  # W_en, b_en (eq. 12)
        self.match_row = torch.nn.Linear(input_dim, self.num_labels)  # the h_i half of W_m, and b_m (eq. 13)
        self.match_column = torch.nn.Linear(input_dim, self.num_labels, bias=False)  # the h_j half of W_m
        # Nearly every token and pair is negative; starting near P = 0.01 keeps the summed losses sane at first.
        for layer in (self.start, self.end, self.match_row):
            torch.nn.init.constant_(layer.bias, -4.6)
        self.weights = (start_weight, end_weight, match_weight)
        self.thresholds = (start_threshold, end_threshold, match_threshold)

    def forward(self, states: torch.Tensor, mask: torch.Tensor,
                gold: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """
        ``states`` (B, T, d), ``mask`` (B, T); ``gold`` (B, N, 3) spans ``[start, end (exclusive), label]``, -1 for
        padding (a negative label is ignored). Returns the logits ``start`` and ``end`` (B, T, K), ``match``
        (B, T, T, K), and with ``gold`` the ``loss`` of eq. 15 summed over the batch.
        """
        output = {"start": self.start(states), "end": self.end(states),
                  "match": self.match_row(states).unsqueeze(2) + self.match_column(states).unsqueeze(1)}
        if gold is not None:
            output["loss"] = self.loss(output, mask, gold)
        return output

    def targets(self, gold: torch.Tensor, length: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """0/1 targets of eq. 14 for (B, N, 3) gold spans: start and end (B, T, K), match (B, T, T, K)."""
        batch = gold.size(0)
        start = torch.zeros(batch, length, self.num_labels, device=gold.device)
        end, match = torch.zeros_like(start), torch.zeros(batch, length, length, self.num_labels, device=gold.device)
        valid = gold[..., 2] >= 0
        rows = torch.arange(batch, device=gold.device).unsqueeze(1).expand_as(gold[..., 0])
        first, last, label = gold[..., 0], gold[..., 1] - 1, gold[..., 2]
        mark_cells(start, (rows, first, label), valid)
        mark_cells(end, (rows, last, label), valid)
        mark_cells(match, (rows, first, last, label), valid)
        return start, end, match

    def loss(self, output: Dict[str, torch.Tensor], mask: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
        """eq. 14 and 15: start and end over the real tokens, match over the pairs i <= j of real tokens."""
        start, end, match = self.targets(gold, mask.size(1))
        tokens = mask.unsqueeze(-1).float()
        pairs = (_upper_pairs(mask).unsqueeze(-1)).float()

        def bce(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), target, weight=weight,
                                                                        reduction="sum")

        alpha, beta, gamma = self.weights
        return (alpha * bce(output["start"], start, tokens) + beta * bce(output["end"], end, tokens)
                + gamma * bce(output["match"], match, pairs))

    def decode(self, output: Dict[str, torch.Tensor], mask: torch.Tensor) -> List[List[Span]]:
        """Per sentence, the predicted spans ``(start, end exclusive, label, p_match)``, sorted."""
        start_threshold, end_threshold, match_threshold = self.thresholds
        starts = torch.sigmoid(output["start"].float()) > start_threshold  # (B, T, K)
        ends = torch.sigmoid(output["end"].float()) > end_threshold
        match = torch.sigmoid(output["match"].float())  # (B, T, T, K)
        chosen = (starts.unsqueeze(2) & ends.unsqueeze(1) & (match > match_threshold)
                  & _upper_pairs(mask).unsqueeze(-1))
        found = chosen.nonzero()
        scores = match[chosen].tolist()
        spans: List[List[Span]] = [[] for _ in range(mask.size(0))]
        for (row, first, last, label), score in zip(found.tolist(), scores):
            spans[row].append((first, last + 1, label, score))
        return spans


def _upper_pairs(mask: torch.Tensor) -> torch.Tensor:
    """(B, T, T): True where tokens i <= j are both real."""
    length = mask.size(1)
    upper = torch.ones(length, length, dtype=torch.bool, device=mask.device).triu()
    return mask.unsqueeze(2) & mask.unsqueeze(1) & upper
