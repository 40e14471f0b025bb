"""How an option is described once, and what reading a table of them gives.

A log-opt (:mod:`.logopts`) and a plugin setting (:mod:`.settings`) are both an
:class:`Option`: a name, a parser, a default and, in words, what is accepted. Each
module keeps one table of them and one loop that reads every option of the table
the same way; the error messages come from the loop, so they are written once and
cannot drift apart between options.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")

#: ``parse(text, what)``: ``what`` is the option as the user wrote it (``log opt 'tag'``,
#: ``KAFKA_TOPIC``), for the parsers that raise :class:`~.errors.OptionError` themselves.
Parser = Callable[[str, str], T]


@dataclass(frozen=True)
class Option(Generic[T]):
    """One log-opt or plugin setting."""

    name: str
    """As the user writes it: ``max-size``, ``KAFKA_ACKS``."""
    parse: Parser[T]
    """Raises ``ValueError`` when the text is not accepted (the loop then says what
    is, from :attr:`expected`), or an ``OptionError`` with a message of its own."""
    default: T
    """The value when the option is not given."""
    expected: str
    """What is accepted, in words: ``true or false``, ``an integer >= 1``."""
    strip: bool = True
    """Settings only: drop blanks around the value first (a password keeps them)."""


def ignoring_what(parse: Callable[[str], T]) -> Parser[T]:
    """A parser that needs no ``what`` (it only ever raises ``ValueError``)."""
    return lambda text, _what: parse(text)


class Values:
    """What one pass over a table read: each given option's value, typed by its descriptor."""

    def __init__(self) -> None:
        self._given: dict[str, Any] = {}

    def set(self, option: Option[T], value: T) -> None:
        self._given[option.name] = value

    def given(self, option: Option[Any]) -> bool:
        return option.name in self._given

    def __getitem__(self, option: Option[T]) -> T:
        if option.name in self._given:
            return cast(T, self._given[option.name])
        return option.default
