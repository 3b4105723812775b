"""Gradio's message queues, one per session, kept while the session still has work running.

Gradio keeps the queues of its last 2,000 sessions (`Queue.pending_messages_per_session`, an
LRU cache) and every raw `/gradio_api/call/...` is a session of its own: 2,000 such calls would
drop the queue of a page whose upload is still being indexed, and its uploader would never be
told how it went. This cache evicts the least recent session with nothing queued or running.
"""

from __future__ import annotations

from gradio.queueing import Queue
from gradio.utils import LRUCache


class SessionsKeptWhileBusy(LRUCache):
    # Gradio has no setting for this: its cache evicts the oldest session, busy or not.
    def __init__(self, queue: Queue, max_size: int) -> None:
        super().__init__(max_size)
        self._queue = queue

    def _busy(self, session: str) -> bool:
        """Whether an event of the session is still queued or running."""
        events = self._queue.event_ids_to_events
        return any(event_id in events
                   for event_id in self._queue.pending_event_ids_session.get(session, ()))

    def __setitem__(self, key, value) -> None:
        if key in self:
            self.move_to_end(key)
        elif len(self) >= self.max_size:
            idle = next((s for s in self if not self._busy(s)), None)
            if idle is not None:  # when every session is busy the cache grows past its size
                del self[idle]
        super(LRUCache, self).__setitem__(key, value)


def keep_busy_sessions(queue: Queue) -> None:
    """Swap the queue's session cache for one that keeps busy sessions (same size, same
    contents)."""
    old = queue.pending_messages_per_session
    kept = SessionsKeptWhileBusy(queue, old.max_size)
    kept.update(old)
    queue.pending_messages_per_session = kept
