from joint_ere.data.data_loader import BatchSampler, BucketBatchSampler, DataLoader, batch_instances, move_to_device
from joint_ere.data.document import Document, Entity, Relation
from joint_ere.data.instance import ENTITY_LABELS, RELATION_LABELS, Instance
from joint_ere.data.readers import DatasetReader, DygieReader, SpertJsonReader
from joint_ere.data.token_indexers import SingleIdTokenIndexer, TokenCharactersIndexer, TokenIndexer
from joint_ere.data.vocabulary import Vocabulary

__all__ = [
    "BatchSampler", "BucketBatchSampler", "DataLoader", "DatasetReader", "Document", "DygieReader", "Entity", "ENTITY_LABELS",
    "Instance", "RELATION_LABELS", "Relation", "SingleIdTokenIndexer", "SpertJsonReader", "TokenCharactersIndexer",
    "TokenIndexer", "Vocabulary", "batch_instances", "move_to_device",
]
