"""What Kafka accepts as a topic name, for the code that makes one legal and the code
that refuses an illegal one."""

from __future__ import annotations

import re

#: Kafka's longest topic name.
MAX_TOPIC = 249
#: A character Kafka does not accept in a topic name.
ILLEGAL_TOPIC_CHAR = re.compile(r"[^A-Za-z0-9._-]")
#: What :func:`is_topic_name` accepts, in words.
TOPIC_NAME_RULE = f"1 to {MAX_TOPIC} of A-Z a-z 0-9 . _ -, and not '.' or '..'"


def is_topic_name(text: str) -> bool:
    """Whether Kafka accepts ``text`` as it is as a topic name."""
    return (
        0 < len(text) <= MAX_TOPIC
        and text not in (".", "..")
        and ILLEGAL_TOPIC_CHAR.search(text) is None
    )
