"""
Maps strings to ids per namespace, AllenNLP's way: namespaces whose name ends in ``labels`` or ``tags`` have no
padding or unknown entry; every other namespace starts with ``@@PADDING@@`` (0) and ``@@UNKNOWN@@`` (1).
Saved as one ``<namespace>.txt`` per namespace plus ``non_padded_namespaces.txt``.
"""
import os
from collections import Counter, defaultdict
from typing import Any, Dict, Iterable, List, Optional

from tango.common import Registrable

from joint_ere.common.errors import ConfigurationError
from joint_ere.common.files import read_json, read_text, resolve_path

PADDING_TOKEN = "@@PADDING@@"
OOV_TOKEN = "@@UNKNOWN@@"
NON_PADDED_SUFFIXES = ("labels", "tags")
NAMESPACE_FILE = "non_padded_namespaces.txt"


def is_padded(namespace: str) -> bool:
    return not namespace.endswith(NON_PADDED_SUFFIXES)


class Vocabulary(Registrable):
    """
    # Parameters (config key ``vocabulary``; the default constructor ``from_instances``)

    min_count : `Dict[str, int]`, optional
        Keep a token of a namespace only if it occurs at least this often, e.g. ``{"tokens": 2}``.
    max_vocab_size : `Dict[str, int]`, optional
        Keep at most this many of the most frequent tokens per namespace.
    label_files : `Dict[str, str]`, optional
        Fix a label namespace from a file instead of the data, e.g. ``{"relation_labels": ".../rel2id.json"}``:
        every label listed gets its id in the file's order (so a label absent from a split still has one), and a
        label of the data that the file lacks is an error. The file is a JSON object ``{label: id}``, CasRel's
        ``[{label: id}, {id: label}]``, or a JSON list of labels.
    """

    default_implementation = "from_instances"

    def __init__(self) -> None:
        self._token_to_index: Dict[str, Dict[str, int]] = {}
        self._index_to_token: Dict[str, List[str]] = {}

    def _namespace(self, namespace: str) -> Dict[str, int]:
        if namespace not in self._token_to_index:
            tokens = [PADDING_TOKEN, OOV_TOKEN] if is_padded(namespace) else []
            self._index_to_token[namespace] = list(tokens)
            self._token_to_index[namespace] = {t: i for i, t in enumerate(tokens)}
        return self._token_to_index[namespace]

    def add_token_to_namespace(self, token: str, namespace: str = "tokens") -> int:
        mapping = self._namespace(namespace)
        if token not in mapping:
            mapping[token] = len(self._index_to_token[namespace])
            self._index_to_token[namespace].append(token)
        return mapping[token]

    def get_token_index(self, token: str, namespace: str = "tokens") -> int:
        """The id of ``token``; unknown tokens map to ``@@UNKNOWN@@`` in padded namespaces and to -1 in label ones."""
        mapping = self._namespace(namespace)
        if token in mapping:
            return mapping[token]
        return self._unknown_index(mapping, namespace)

    def get_token_indices(self, tokens: Iterable[str], namespace: str = "tokens") -> List[int]:
        """``get_token_index`` of every token, the namespace looked up once."""
        mapping = self._namespace(namespace)
        unknown = self._unknown_index(mapping, namespace)
        return [mapping.get(token, unknown) for token in tokens]

    @staticmethod
    def _unknown_index(mapping: Dict[str, int], namespace: str) -> int:
        return mapping[OOV_TOKEN] if is_padded(namespace) else -1

    def get_token_from_index(self, index: int, namespace: str = "tokens") -> str:
        return self._index_to_token[namespace][index]

    def get_index_to_token_vocabulary(self, namespace: str = "tokens") -> Dict[int, str]:
        self._namespace(namespace)
        return dict(enumerate(self._index_to_token[namespace]))

    def get_token_to_index_vocabulary(self, namespace: str = "tokens") -> Dict[str, int]:
        return dict(self._namespace(namespace))

    def get_vocab_size(self, namespace: str = "tokens") -> int:
        return len(self._namespace(namespace))

    @property
    def namespaces(self) -> List[str]:
        return sorted(self._index_to_token)

    @classmethod
    def from_counter(cls, counter: Dict[str, Counter], min_count: Optional[Dict[str, int]] = None,
                     max_vocab_size: Optional[Dict[str, int]] = None) -> "Vocabulary":
        vocab = cls()
        for namespace in sorted(counter):
            vocab._namespace(namespace)
            # Most frequent first, ties alphabetical, so the ids do not depend on reading order.
            items = sorted(counter[namespace].items(), key=lambda kv: (-kv[1], kv[0]))
            if max_vocab_size and namespace in max_vocab_size:
                items = items[: max_vocab_size[namespace]]
            threshold = (min_count or {}).get(namespace, 1)
            for token, count in items:
                if count >= threshold or not is_padded(namespace):
                    vocab.add_token_to_namespace(token, namespace)
        return vocab

    @classmethod
    def from_instances(cls, instances: Iterable, min_count: Optional[Dict[str, int]] = None,
                       max_vocab_size: Optional[Dict[str, int]] = None,
                       label_files: Optional[Dict[str, str]] = None) -> "Vocabulary":
        counter: Dict[str, Counter] = defaultdict(Counter)
        for instance in instances:
            instance.count_vocab_items(counter)
        fixed = {namespace: read_label_file(path, f"vocabulary.label_files.{namespace}")
                 for namespace, path in (label_files or {}).items()}
        for namespace, labels in fixed.items():
            unknown = sorted(set(counter.get(namespace, {})) - set(labels))
            if unknown:
                raise ConfigurationError(f"vocabulary.label_files.{namespace}: {label_files[namespace]} lacks "
                                         f"{len(unknown)} label(s) of the data: {', '.join(unknown[:10])}")
            counter.pop(namespace, None)
        vocab = cls.from_counter(counter, min_count, max_vocab_size)
        for namespace, labels in fixed.items():
            vocab._namespace(namespace)
            for label in labels:
                vocab.add_token_to_namespace(label, namespace)
        return vocab

    def save_to_files(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, NAMESPACE_FILE), "w", encoding="utf-8") as handle:
            for namespace in self.namespaces:
                if not is_padded(namespace):
                    handle.write(namespace + "\n")
        for namespace in self.namespaces:
            with open(os.path.join(directory, namespace + ".txt"), "w", encoding="utf-8") as handle:
                tokens = self._index_to_token[namespace]
                start = 1 if is_padded(namespace) else 0  # padding is implicit, as in AllenNLP
                for token in tokens[start:]:
                    handle.write(token.replace("\n", "@@NEWLINE@@") + "\n")

    @classmethod
    def from_files(cls, directory: str) -> "Vocabulary":
        if not os.path.isdir(directory):
            raise ConfigurationError(f"vocabulary directory not found: {directory}")
        vocab = cls()
        for name in sorted(os.listdir(directory)):
            if not name.endswith(".txt") or name == NAMESPACE_FILE:
                continue
            namespace = name[: -len(".txt")]
            vocab._namespace(namespace)
            for line in read_text(os.path.join(directory, name)).split("\n")[:-1]:
                vocab.add_token_to_namespace(line.replace("@@NEWLINE@@", "\n"), namespace)
        return vocab

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._index_to_token == other._index_to_token

    def __repr__(self) -> str:
        sizes = ", ".join(f"{ns}: {self.get_vocab_size(ns)}" for ns in self.namespaces)
        return f"Vocabulary({sizes})"


def read_label_file(path: str, key: str) -> List[str]:
    """The labels of a ``label_files`` entry, in id order."""
    try:
        content = read_json(resolve_path(path))
    except Exception as error:
        raise ConfigurationError(f"{key}: {error}") from None
    def ordered(mapping: Any) -> Optional[List[str]]:
        """{label: id} or {"id": label} in id order; None for anything else."""
        if not isinstance(mapping, dict) or not mapping:
            return None
        if all(isinstance(v, int) and not isinstance(v, bool) for v in mapping.values()):
            return sorted(mapping, key=mapping.__getitem__)
        if all(isinstance(v, str) and k.isdigit() for k, v in mapping.items()):
            return [mapping[k] for k in sorted(mapping, key=int)]
        return None

    candidates = content if isinstance(content, list) and any(isinstance(c, dict) for c in content) else [content]
    found = [labels for labels in map(ordered, candidates) if labels is not None]
    if found:
        labels = found[0]  # CasRel's rel2id.json holds both directions: [{label: id}, {id: label}]
    elif isinstance(content, list) and all(isinstance(v, str) for v in content):
        labels = list(content)
    else:
        raise ConfigurationError(f"{key}: {path} is neither {{label: id}}, {{id: label}}, CasRel's list of both, "
                                 f"nor a list of labels")
    if not labels or len(set(labels)) != len(labels):
        raise ConfigurationError(f"{key}: {path} lists no labels, or one twice")
    return labels


Vocabulary.register("from_instances", constructor="from_instances")(Vocabulary)
Vocabulary.register("from_files", constructor="from_files")(Vocabulary)
