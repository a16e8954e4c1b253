"""Micro-batching: requests that arrive within a few milliseconds of each other go through the model together."""
import asyncio
import concurrent.futures
import logging
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from joint_ere.predictors.predictor import PredictionInput, sentence_count

logger = logging.getLogger(__name__)

PredictFunction = Callable[[Sequence[PredictionInput]], List[Dict[str, Any]]]


class MicroBatcher:
    """
    ``await batcher.submit(inputs)`` queues one request's inputs. A single worker takes the first waiting request,
    then keeps collecting requests until ``max_batch_size`` sentences are gathered or ``max_wait_ms`` has passed
    since the first one, and runs them all through ``predict`` in one call on the executor (a thread by default;
    ``allennlp serve`` uses a process of its own, ``worker.py``) while the event loop keeps accepting requests.
    A request larger than ``max_batch_size`` goes alone; ``predict`` cuts it into batches itself.
    If ``predict`` raises, every request of that batch gets the exception.

    Up to ``max_in_flight`` batches are handed to the executor at once (default 2): the next batch waits in the
    executor's queue while the model runs the current one, so the model does not sit idle while the answers of
    one batch travel back and the next batch travels in (the executor has one worker, so they still run one at a
    time, in order).
    """

    def __init__(self, predict: PredictFunction, max_batch_size: int = 64, max_wait_ms: float = 5.0,
                 executor_factory: Optional[Callable[[], concurrent.futures.Executor]] = None,
                 max_in_flight: int = 2) -> None:
        if max_batch_size < 1 or max_wait_ms < 0 or max_in_flight < 1:
            raise ValueError(f"max_batch_size and max_in_flight must be positive and max_wait_ms not negative, "
                             f"not {max_batch_size}, {max_in_flight} and {max_wait_ms}")
        self.predict = predict
        self.executor_factory = executor_factory or (
            lambda: concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="model"))
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_in_flight = max_in_flight
        self._queue: Optional[asyncio.Queue] = None
        self._worker: Optional[asyncio.Task] = None
        self._executor: Optional[concurrent.futures.Executor] = None
        self._in_flight: Set[asyncio.Task] = set()
        self.batches_run = 0
        self.requests_served = 0

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._executor = self.executor_factory()
        # The first call starts the executor (a worker process loads the model): done before serving.
        await asyncio.get_running_loop().run_in_executor(self._executor, self.predict, [])
        self._worker = asyncio.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        for task in list(self._in_flight):
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._worker = self._executor = None

    async def submit(self, inputs: Sequence[PredictionInput]) -> List[Dict[str, Any]]:
        if self._queue is None:
            raise RuntimeError("the batcher is not started")
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((list(inputs), future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(self.max_in_flight)
        while True:
            await slots.acquire()  # a free slot first: requests keep gathering while the model is busy
            batch = [await self._queue.get()]
            size = sentence_count(batch[0][0])
            deadline = loop.time() + self.max_wait
            while size < self.max_batch_size:
                if self._queue.empty():
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self._queue.get(), remaining)
                    except asyncio.TimeoutError:
                        break
                else:
                    item = self._queue.get_nowait()
                batch.append(item)
                size += sentence_count(item[0])
            task = asyncio.create_task(self._serve(batch, loop))
            self._in_flight.add(task)
            task.add_done_callback(lambda done: (self._in_flight.discard(done), slots.release()))

    async def _serve(self, batch: List[Tuple[List[PredictionInput], asyncio.Future]],
                     loop: asyncio.AbstractEventLoop) -> None:
        live = [(inputs, future) for inputs, future in batch if not future.cancelled()]  # clients that left
        if not live:
            return
        joined = [item for inputs, _ in live for item in inputs]
        executor = self._executor
        try:
            outputs = await loop.run_in_executor(executor, self.predict, joined)
        except Exception as error:  # handed to each request, which answers 500 without details
            logger.exception("prediction failed for a batch of %d requests", len(live))
            # e.g. the worker process was killed; the other batch in flight learns it too, and is not the one to
            # replace the executor again
            if isinstance(error, concurrent.futures.BrokenExecutor) and self._executor is executor:
                logger.error("the model's executor is broken; starting a new one")
                executor.shutdown(wait=False)
                self._executor = self.executor_factory()
            for _, future in live:
                if not future.done():
                    future.set_exception(error)
            return
        self.batches_run += 1
        self.requests_served += len(live)
        start = 0
        for inputs, future in live:
            if not future.done():
                future.set_result(outputs[start: start + len(inputs)])
            start += len(inputs)
