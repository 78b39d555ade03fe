"""Public names of signing keys: what records carry and what ``config show`` prints.

A shared record names the key that signed it (so keys can rotate); ``config show`` prints
the same name instead of the secret, so people can match a configured key to the records
it signed. Kept apart from the record format (``netformat``) because configuration needs
it without the network tier.
"""

from __future__ import annotations

import hashlib
import hmac

KEY_ID_LEN = 4


def key_id(secret: bytes) -> bytes:
    """A short public name for a signing key (one-way: it reveals no more than a signature)."""
    return hmac.new(secret, b"llamacache signing key id", hashlib.sha256).digest()[:KEY_ID_LEN]
