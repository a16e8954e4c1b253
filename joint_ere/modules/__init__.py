from joint_ere.modules.encoders import (MultiTaskEncoder, PartitionFilterEncoder, SelectionRecurrentNetwork,
                                        SharedStatesEncoder)
from joint_ere.modules.heads import SpanExtractionHead
from joint_ere.modules.tagging import CrfTagDecoder, SoftmaxTagDecoder, TagDecoder, TagScheme
from joint_ere.modules.token_embedders import (BasicTextFieldEmbedder, Embedding, TextFieldEmbedder,
                                               TokenCharactersEncoder, TokenEmbedder)
from joint_ere.modules.transformer_embedder import PretrainedTransformerMismatchedEmbedder

__all__ = ["BasicTextFieldEmbedder", "CrfTagDecoder", "Embedding", "MultiTaskEncoder", "PartitionFilterEncoder",
           "PretrainedTransformerMismatchedEmbedder", "SelectionRecurrentNetwork", "SharedStatesEncoder",
           "SoftmaxTagDecoder", "SpanExtractionHead", "TagDecoder", "TagScheme", "TextFieldEmbedder", "TokenCharactersEncoder",
           "TokenEmbedder"]
