"""The TLS files of ``KAFKA_TLS_*``, loaded once at startup.

:func:`~.parsers.parse_readable_file` has checked each is a readable file;
here they are read as PEM the way the producer will read them, so a wrong file
(not a certificate, an encrypted key, a key that does not match) fails the
plugin's start with a message naming the setting, not every send later.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from .errors import OptionError


def check_tls_files(
    ca: Path | None,
    cert: Path | None,
    key: Path | None,
    *,
    ca_name: str,
    cert_name: str,
    key_name: str,
) -> None:
    """Load the PEM files once now, so a bad one fails startup, not every send.

    The ``*_name`` arguments are the settings the files come from, for the message.
    """
    ctx = ssl.create_default_context()
    if ca is not None:
        try:
            ctx.load_verify_locations(cafile=str(ca))
        except (ssl.SSLError, OSError) as exc:
            raise OptionError(
                f"{ca_name}: {ca} holds no usable CA certificate ({exc.__class__.__name__})"
            ) from None
    if cert is not None and key is not None:
        try:
            ctx.load_cert_chain(str(cert), str(key))
        except (ssl.SSLError, OSError) as exc:
            raise OptionError(
                f"{cert_name}/{key_name}: {cert} and {key} are not a usable "
                f"certificate and unencrypted key ({exc.__class__.__name__})"
            ) from None
