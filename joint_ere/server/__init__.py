"""``allennlp serve``: the HTTP service (``app``) and its micro-batching of concurrent requests (``batching``)."""
from joint_ere.server.app import build_app
from joint_ere.server.batching import MicroBatcher

__all__ = ["MicroBatcher", "build_app"]
