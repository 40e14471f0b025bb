"""The one error every bad log-opt or setting raises."""

from __future__ import annotations


class OptionError(ValueError):
    """A log-opt or setting that pylog cannot accept; the message is shown to the user.

    For a log-opt it fails ``docker run``; for a plugin setting it fails the plugin's
    start. Either way the message names the option and says what is accepted.
    """
