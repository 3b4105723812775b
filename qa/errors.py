"""Errors meant for the user: each message is one clear line; faces print it as is."""


class QAError(Exception):
    """Base of every error a face shows to the user instead of a traceback."""


class IndexDamaged(QAError):
    """The index on disk cannot be used; the message says how to rebuild it."""


class IndexLocked(QAError):
    """Another process is writing the index."""


class BadQuestion(QAError):
    """The question cannot be searched (empty, whitespace)."""


class IndexInconsistent(QAError):
    """An update would have written an index whose parts disagree; it was not saved."""


class NoSuchSource(QAError):
    """A file or folder named to index does not exist."""
