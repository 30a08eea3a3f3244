"""Who is asking: the user id every chat and upload belongs to.

Two modes (the README's "Running the chat"): one person on their own machine, where the machine's user is the one
owner (``local:<login>``), and a team behind Streamlit's ``st.login`` (OIDC), where the identity provider's
``iss`` and ``sub`` claims name the user (``oidc:<iss>|<sub>``; OpenID Connect Core 1.0 §2: the pair is the stable,
unique user identifier, an e-mail address is not).
"""

from __future__ import annotations

import getpass
import hashlib


def local_user_id() -> str:
    """The owner in single-user mode: ``local:<login name of the process>``."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        name = "user"
    return f"local:{name}"


def oidc_user_id(issuer: str, subject: str) -> str:
    """The owner in multi-user mode, from the ID token's ``iss`` and ``sub`` claims."""
    if not subject:
        raise ValueError("an OIDC identity needs a non-empty 'sub' claim")
    return f"oidc:{issuer}|{subject}"


def user_key(user_id: str) -> str:
    """A short, file-name- and collection-name-safe key for ``user_id``: the first 16 hex digits of its sha256.

    Used for the per-user upload folder and Chroma collection, so neither reveals the identity.
    """
    return hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:16]
