from joint_ere.modules.tagging import CrfTagDecoder, SoftmaxTagDecoder, TagDecoder, TagScheme
from joint_ere.modules.token_embedders import (BasicTextFieldEmbedder, Embedding, TextFieldEmbedder,
                                               TokenCharactersEncoder, TokenEmbedder)

__all__ = ["BasicTextFieldEmbedder", "CrfTagDecoder", "Embedding", "SoftmaxTagDecoder", "TagDecoder", "TagScheme",
           "TextFieldEmbedder", "TokenCharactersEncoder", "TokenEmbedder"]
