"""Which login cookies still read a known profile.

A cookie bound to a user carries the profile's ``cookie_epoch`` of when it was signed. It
reads the profile while that epoch is current and its device id (the cookie's visitor id)
is not among the profile's ``revoked`` ones. Logging out revokes the browser's device id
(and every copy of its cookie); logging out everywhere starts a new epoch; erasing the
profile revokes everything, since a cookie whose profile is gone reads nothing.

>>> from personalize.profiles.profile import Profile
>>> ann = Profile(key="u:ann")
>>> admits(ann, "phone", 0), admits(ann, "laptop", 0)
(True, True)
>>> revoke(ann, "phone")
>>> admits(ann, "phone", 0), admits(ann, "laptop", 0)
(False, True)
>>> revoke(ann, None)  # everywhere
>>> admits(ann, "laptop", 0), admits(ann, "laptop", ann.cookie_epoch)
(False, True)
"""

from __future__ import annotations

from personalize.profiles.profile import Profile

__all__ = ["MAX_REVOKED", "REVOKE", "admits", "revoke"]

#: The event kind that carries a revocation through the write path (never accepted from the
#: events API or ``track``): properties ``{"device": <id>}``, or ``{}`` for every cookie.
REVOKE = "revoke"
MAX_REVOKED = 64  # device ids remembered; one more starts a new epoch instead


def admits(profile: Profile, device_id: str, epoch: int) -> bool:
    """True when a login cookie with ``device_id`` signed at ``epoch`` still reads
    ``profile`` (one comparison on every request of a known visitor, two after a logout)."""
    if epoch < profile.cookie_epoch:
        return False
    return not profile.revoked or device_id not in profile.revoked


def revoke(profile: Profile, device_id: str | None) -> None:
    """Revoke the login cookies of ``device_id`` (None: every login cookie of the profile).

    Past :data:`MAX_REVOKED` device ids, a new epoch revokes them all at once: the list
    stays short and no revoked cookie ever comes back.
    """
    if device_id is not None and len(profile.revoked) < MAX_REVOKED:
        if device_id not in profile.revoked:
            profile.revoked.append(device_id)
        return
    profile.cookie_epoch += 1
    profile.revoked = []
