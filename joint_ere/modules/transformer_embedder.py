"""
``pretrained_transformer_mismatched``: a Hugging Face encoder under word-level models. Wordpieces from the
indexer of the same name are encoded (in overlapping windows when a sentence is longer than the model allows)
and pooled back to one vector per word.
"""
import copy
import math
from typing import Dict, List, Optional

import torch
from allennlp_light.modules import ScalarMix

from joint_ere.common.errors import ConfigurationError
from joint_ere.common.transformers import cached_tokenizer, load_model
from joint_ere.modules.token_embedders import TokenEmbedder

POOLINGS = ("first", "last", "mean")


@TokenEmbedder.register("pretrained_transformer_mismatched")
class PretrainedTransformerMismatchedEmbedder(TokenEmbedder):
    """
    # Parameters

    model_name : `str`
        A hub name or a local folder; the indexer must name the same model.
    pooling : `str`, optional (default = `"mean"`)
        How a word's wordpiece vectors become one: ``first``, ``last`` or ``mean``.
    last_layer_only : `bool`, optional (default = `True`)
        Otherwise a learned scalar mix of all layers (allennlp-light's ScalarMix).
    train_parameters : `bool`, optional (default = `True`)
        ``false`` freezes the transformer and keeps it in eval mode (no dropout) also while the model trains:
        fixed features, as Crone 2020 used ELMo's (with ``last_layer_only: false``, a trained mix of its layers).
    max_length : `int`, optional
        Wordpieces per window, special tokens included (default: the model's maximum). Longer sentences are
        encoded in windows overlapping by half, and each wordpiece takes its vector from the window in which it
        sits most centrally.
    load_weights : `bool`, optional (default = `True`)
        ``false`` builds the architecture only; ``load_archive`` sets it, since the archive holds the weights.
    feature_cache_mb : `int`, optional (default = `4096`)
        A frozen transformer's word vectors (every layer, when mixed) are kept per sentence, in host memory, once
        a training run has started, so each sentence is encoded once per run instead of once per epoch; this many
        MiB at most (later sentences are encoded every time), ``0`` turns it off. A trainable transformer, or a
        model that only predicts, never caches.
    """

    def __init__(self, model_name: str, pooling: str = "mean", last_layer_only: bool = True,
                 train_parameters: bool = True, max_length: Optional[int] = None, load_weights: bool = True,
                 feature_cache_mb: int = 4096) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigurationError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
        self.transformer = load_model(model_name, load_weights)
        self.model_name = model_name
        self.tokenizer = tokenizer = cached_tokenizer(model_name)  # shared with the indexer until markers are added
        self._private_tokenizer = False
        self.cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
        self.sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        limit = getattr(self.transformer.config, "max_position_embeddings", 512)
        if tokenizer.model_max_length and tokenizer.model_max_length < 100_000:
            limit = min(limit, tokenizer.model_max_length)
        self.max_length = max_length or limit
        if feature_cache_mb < 0:
            raise ConfigurationError(f"feature_cache_mb must be 0 or more, not {feature_cache_mb}")
        if self.max_length < 4:
            raise ConfigurationError(f"max_length {self.max_length} leaves no room for wordpieces")
        self.pooling = pooling
        self.scalar_mix = (None if last_layer_only
                           else ScalarMix(self.transformer.config.num_hidden_layers + 1))
        self.inference_dtype: Optional[torch.dtype] = None  # see ``use_reduced_precision``
        for parameter in self.transformer.parameters():
            parameter.requires_grad_(train_parameters)
        self.train_parameters = train_parameters
        self.output_dim = self.transformer.config.hidden_size
        self.layers = 1 if self.scalar_mix is None else self.transformer.config.num_hidden_layers + 1
        self.feature_cache = FeatureCache(feature_cache_mb if not train_parameters else 0)
        self.train(self.training)

    def train(self, mode: bool = True) -> "PretrainedTransformerMismatchedEmbedder":
        super().train(mode)
        if not self.train_parameters:
            self.transformer.eval()
        return self

    def get_output_dim(self) -> int:
        return self.output_dim

    def add_special_tokens(self, names: List[str]) -> List[int]:
        """
        New special tokens (text markers, say) with embeddings of their own, trained with the transformer: added
        to a private copy of the tokenizer (the indexer's is left alone, so no word of a text ever becomes a
        marker) and appended as rows of the word-embedding matrix. Returns their ids, in the order of ``names``.
        The same names in the same order give the same ids, so a model adding them in its constructor finds its
        trained rows again when ``load_archive`` rebuilds it.
        """
        if not self._private_tokenizer:
            self.tokenizer = copy.deepcopy(self.tokenizer)
            self._private_tokenizer = True
        known = set(self.tokenizer.get_vocab())
        fresh = [name for name in dict.fromkeys(names) if name not in known]
        if fresh:
            self.tokenizer.add_tokens(fresh, special_tokens=True)
            rows = self.transformer.get_input_embeddings().num_embeddings
            self.transformer.resize_token_embeddings(max(rows, len(self.tokenizer)), mean_resizing=False)
            self._initialise_rows(self.tokenizer.convert_tokens_to_ids(fresh))
        return self.tokenizer.convert_tokens_to_ids(list(names))

    @torch.no_grad()
    def _initialise_rows(self, ids: List[int]) -> None:
        """New rows start at the mean of the pretrained rows plus noise of their spread, as new vocabulary in
        fine-tuning usually does, so the markers begin in the region the transformer's layers expect."""
        weight = self.transformer.get_input_embeddings().weight
        known = torch.ones(weight.size(0), dtype=torch.bool, device=weight.device)
        known[ids] = False
        mean, spread = weight[known].mean(0), weight[known].std(0)
        weight[ids] = mean + spread * torch.randn(len(ids), weight.size(1), device=weight.device, dtype=weight.dtype)

    def forward(self, token_ids: torch.Tensor, wordpiece_mask: torch.Tensor, offsets: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        if self.training and self.feature_cache.capacity > 0:
            self.feature_cache.active = True  # from the first training batch on (never in a predictor)
        if self.feature_cache.active and not (self.inference_dtype is not None and not self.training):
            return self._cached_forward(token_ids, wordpiece_mask, offsets, mask)
        pieces = self._encode_pieces(token_ids, wordpiece_mask)  # (B, W, D)
        return self._pool(pieces, offsets, mask)

    def _cached_forward(self, token_ids: torch.Tensor, wordpiece_mask: torch.Tensor, offsets: torch.Tensor,
                        mask: torch.Tensor) -> torch.Tensor:
        """The frozen transformer's layers pooled to words, from the cache where a sentence is in it; the scalar
        mix comes after pooling (both are linear, so the order does not change the result)."""
        piece_lengths, word_lengths = wordpiece_mask.sum(1).tolist(), mask.sum(1).tolist()
        host_ids, host_offsets = token_ids.cpu(), offsets.cpu()
        keys = [FeatureCache.key(host_ids[b, :piece_lengths[b]], host_offsets[b, :word_lengths[b]])
                for b in range(token_ids.size(0))]
        found = [self.feature_cache.get(key) for key in keys]
        missing = [b for b, features in enumerate(found) if features is None]
        if missing:
            rows = torch.tensor(missing, device=token_ids.device)
            width = max(1, max(piece_lengths[b] for b in missing))
            with torch.no_grad():
                pieces = self._encode_pieces(token_ids[rows, :width], wordpiece_mask[rows, :width], all_layers=True)
                words = self._pool(pieces, offsets[rows], mask[rows])  # (M, T, L * D)
            words = words.float().cpu()  # the cache lives in host memory, whatever the model's device
            for row, b in enumerate(missing):
                found[b] = words[row, :word_lengths[b]].view(word_lengths[b], self.layers, self.output_dim).clone()
                self.feature_cache.put(keys[b], found[b])
        layers = torch.zeros(mask.shape + (self.layers, self.output_dim))
        for b, features in enumerate(found):
            layers[b, :features.size(0)] = features
        layers = layers.to(token_ids.device)
        if self.scalar_mix is None:
            return layers[:, :, 0]
        return self.scalar_mix(list(layers.unbind(2)), mask)

    # -- wordpieces -> vectors, in windows ---------------------------------------------------------------
    def _encode_pieces(self, token_ids: torch.Tensor, wordpiece_mask: torch.Tensor,
                       all_layers: bool = False) -> torch.Tensor:
        """(B, W, D) wordpiece vectors; with ``all_layers``, the layers the scalar mix would take side by side
        (B, W, L * D), unmixed."""
        batch, width = token_ids.shape
        content = min(self.max_length - 2, width)  # windows are no longer than the batch's longest sentence
        stride = max(1, content // 2)
        windows = 1 if width <= content else math.ceil((width - content) / stride) + 1
        lengths = wordpiece_mask.sum(1)
        starts = torch.arange(windows, device=token_ids.device) * stride  # (N,)
        positions = starts.unsqueeze(1) + torch.arange(content, device=token_ids.device)  # (N, C)
        inside = positions < width
        gathered = token_ids[:, positions.clamp(max=width - 1)]  # (B, N, C)
        real = inside.unsqueeze(0) & (positions.unsqueeze(0) < lengths.view(-1, 1, 1))
        window_length = real.sum(-1)  # (B, N)
        ids = torch.full((batch, windows, content + 2), self.pad_id, dtype=torch.long, device=token_ids.device)
        ids[:, :, 0] = self.cls_id
        ids[:, :, 1:-1] = torch.where(real, gathered, torch.full_like(gathered, self.pad_id))
        ids.scatter_(2, (window_length + 1).unsqueeze(-1), self.sep_id)
        attention = torch.arange(content + 2, device=ids.device) < (window_length + 2).unsqueeze(-1)
        flat_ids, flat_attention = ids.view(-1, content + 2), attention.view(-1, content + 2)
        keep = window_length.view(-1) > 0  # skip windows past a sentence's end
        size = self.output_dim * (self.layers if all_layers else 1)
        hidden = torch.zeros(flat_ids.size(0), content + 2, size, device=ids.device)
        if keep.any():
            reduced = self.inference_dtype is not None and not self.training
            with torch.autocast(ids.device.type, dtype=self.inference_dtype, enabled=reduced):
                out = self.transformer(input_ids=flat_ids[keep], attention_mask=flat_attention[keep].long(),
                                       output_hidden_states=self.scalar_mix is not None)
            if self.scalar_mix is None:
                encoded = out.last_hidden_state
            elif all_layers:
                encoded = torch.cat(out.hidden_states, dim=-1)
            else:
                encoded = self.scalar_mix(list(out.hidden_states), flat_attention[keep])
            if reduced:
                encoded = encoded.float()
            hidden = hidden.to(encoded.dtype)
            hidden[keep] = encoded
        hidden = hidden.view(batch, windows, content + 2, -1)[:, :, 1:-1]  # drop CLS/SEP slots
        choice = window_for_position(width, content, stride, windows, token_ids.device)  # (W,)
        piece_positions = torch.arange(width, device=ids.device)
        return hidden[:, choice, piece_positions - choice * stride]

    # -- wordpiece vectors -> word vectors ---------------------------------------------------------------
    def _pool(self, pieces: torch.Tensor, offsets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        start, end = offsets[..., 0], offsets[..., 1].clamp(min=1)
        if self.pooling == "first":
            words = pieces.gather(1, start.unsqueeze(-1).expand(-1, -1, pieces.size(-1)))
        elif self.pooling == "last":
            words = pieces.gather(1, (end - 1).unsqueeze(-1).expand(-1, -1, pieces.size(-1)))
        else:
            total = torch.cat([pieces.new_zeros(pieces.size(0), 1, pieces.size(-1)), pieces.cumsum(1)], dim=1)
            index = lambda at: total.gather(1, at.unsqueeze(-1).expand(-1, -1, total.size(-1)))  # noqa: E731
            words = (index(end) - index(start)) / (end - start).clamp(min=1).unsqueeze(-1)
        return words * mask.unsqueeze(-1)


class FeatureCache:
    """Word vectors of a frozen transformer per sentence (keyed by its wordpieces and word offsets) in host
    memory (float32), up to a size in MiB; inactive until the embedder's first training batch."""

    def __init__(self, size_mb: int) -> None:
        self.capacity = size_mb * 2 ** 20
        self.used = 0
        self.active = False
        self._features: Dict[bytes, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._features)

    @staticmethod
    def key(wordpieces: torch.Tensor, offsets: torch.Tensor) -> bytes:
        pieces = wordpieces.numpy().tobytes()
        return len(pieces).to_bytes(4, "little") + pieces + offsets.numpy().tobytes()

    def get(self, key: bytes) -> Optional[torch.Tensor]:
        return self._features.get(key)

    def put(self, key: bytes, features: torch.Tensor) -> None:
        size = features.numel() * features.element_size()
        if self.used + size <= self.capacity:
            self._features[key] = features
            self.used += size


def window_for_position(width: int, content: int, stride: int, windows: int, device=None) -> torch.Tensor:
    """For each wordpiece position, the window (of ``content`` pieces, starting every ``stride``) that holds it
    nearest its middle."""
    position = torch.arange(width, device=device)
    first = torch.clamp(torch.div(position - content + stride, stride, rounding_mode="floor"), min=0)
    last = torch.clamp(torch.div(position, stride, rounding_mode="floor"), max=windows - 1)
    centred = torch.round((position - content / 2) / stride).long()
    return torch.maximum(first, torch.minimum(last, centred))


def use_reduced_precision(model: torch.nn.Module, device: torch.device) -> int:
    """
    Run every transformer embedder of ``model`` under autocast at inference (bfloat16 on a CPU, float16 on a
    GPU), and on a CPU the ``lstm`` encoders in bfloat16; everything else (the SRN / PFN cells, CRF, scorers)
    stays in float32. On the 2-core development CPU this nearly doubles MiniLM's prediction speed and moved
    CoNLL04 dev F1 by less than 0.2 (RESULTS.md). Returns how many modules it switched.
    """
    from joint_ere.modules.encoders.lstm import _Lstm

    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    switched = 0
    for module in model.modules():
        if isinstance(module, PretrainedTransformerMismatchedEmbedder) or (
                isinstance(module, _Lstm) and device.type == "cpu"):
            module.inference_dtype = dtype
            switched += 1
    return switched
