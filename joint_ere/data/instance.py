"""An Instance is one document plus its ids once a vocabulary exists."""
from collections import Counter
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from joint_ere.data.document import Document

if TYPE_CHECKING:
    from joint_ere.data.token_indexers import TokenIndexer
    from joint_ere.data.vocabulary import Vocabulary

ENTITY_LABELS = "entity_labels"
RELATION_LABELS = "relation_labels"


class Instance:
    def __init__(self, document: Document, token_indexers: Dict[str, "TokenIndexer"]) -> None:
        self.document = document
        self.token_indexers = token_indexers
        self.indexed: Optional[Dict[str, list]] = None
        self.entities: List[Tuple[int, int, int]] = []
        self.relations: List[Tuple[int, int, int]] = []

    def __len__(self) -> int:
        return len(self.document.tokens)

    def count_vocab_items(self, counter: Dict[str, Counter]) -> None:
        for indexer in self.token_indexers.values():
            indexer.count_vocab_items(self.document.tokens, counter)
        counter[ENTITY_LABELS].update(e.type for e in self.document.entities)
        counter[RELATION_LABELS].update(r.type for r in self.document.relations)

    def index_fields(self, vocab: "Vocabulary") -> None:
        """Ids for tokens and labels; a label the vocabulary never saw gets -1 (ignored by losses)."""
        tokens = self.document.tokens
        self.indexed = {name: ix.tokens_to_indices(tokens, vocab) for name, ix in self.token_indexers.items()}
        self.entities = [(e.start, e.end, vocab.get_token_index(e.type, ENTITY_LABELS))
                         for e in self.document.entities]
        self.relations = [(r.head, r.tail, vocab.get_token_index(r.type, RELATION_LABELS))
                          for r in self.document.relations]
