"""Checks of the arguments Python callers give, with the errors SimCSE's users get (ValueError),
before anything reaches the native module (which would say OverflowError or name CLI flags)."""
from numbers import Integral

from ._native import MAX_BATCH_SIZE, MAX_THREADS

# Past any position table; only here so that a huge int is a ValueError, not an OverflowError.
MAX_LENGTH = 1 << 20


def sentences_of(sentence, what="sentence"):
    """``(list of sentences, whether one str was given)``; anything else is a ValueError."""
    if isinstance(sentence, str):
        return [sentence], True
    if isinstance(sentence, (list, tuple)):
        for i, item in enumerate(sentence):
            if not isinstance(item, str):
                raise ValueError(f"{what}[{i}] is a {type(item).__name__}, not a str: {what} must be a str or a list of str")
        return list(sentence), False
    raise ValueError(f"{what} must be a str or a list of str, not {type(sentence).__name__}")


def positive_int(name, value, least=1, most=None):
    if isinstance(value, bool) or not isinstance(value, Integral) or value < least:
        raise ValueError(f"{name} must be an int of at least {least}, not {value!r}")
    if most is not None and value > most:
        raise ValueError(f"{name} {value} is out of range: {least} to {most}")
    return int(value)


def batch_size(value):
    return positive_int("batch_size", value, most=MAX_BATCH_SIZE)


def max_length(value):
    return None if value is None else positive_int("max_length", value, least=2, most=MAX_LENGTH)


def threads(value):
    return None if value is None else positive_int("threads", value, most=MAX_THREADS)
