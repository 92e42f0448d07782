"""Which login cookies still read a known profile.

A profile's ``cookie_epoch`` is a random number, drawn when the profile is created and
drawn again when every login cookie is revoked. A cookie bound to a user carries the epoch
of when it was signed; it reads the profile while that epoch is the profile's and its device
id (the cookie's visitor id) is not among the profile's ``revoked`` ones. Logging out
revokes the browser's device id (and every copy of its cookie); logging out everywhere draws
a new epoch; erasing the profile revokes everything: a cookie whose profile is gone reads
nothing, and a profile created again later for the same user (a new login, an event) has
an epoch of its own, which no cookie of before carries.

>>> from personalize.profiles.profile import Profile
>>> ann = Profile(key="u:ann")
>>> signed = ann.cookie_epoch  # what the login cookies carry
>>> admits(ann, "phone", signed), admits(ann, "laptop", signed)
(True, True)
>>> revoke(ann, "phone")
>>> admits(ann, "phone", signed), admits(ann, "laptop", signed)
(False, True)
>>> revoke(ann, None)  # everywhere
>>> admits(ann, "laptop", signed), admits(ann, "laptop", ann.cookie_epoch)
(False, True)
>>> admits(Profile(key="u:ann"), "laptop", ann.cookie_epoch)  # erased, then created again
False
"""

from __future__ import annotations

from personalize.profiles.profile import Profile, new_cookie_epoch

__all__ = ["MAX_REVOKED", "REVOKE", "admits", "revoke"]

#: The event kind that carries a revocation through the write path (never accepted from the
#: events API or ``track``): properties ``{"device": <id>}``, or ``{}`` for every cookie.
REVOKE = "revoke"
MAX_REVOKED = 64  # device ids remembered; one more draws a new epoch instead


def admits(profile: Profile, device_id: str, epoch: int) -> bool:
    """True when a login cookie with ``device_id`` signed at ``epoch`` still reads
    ``profile`` (one comparison on every request of a known visitor, two after a logout)."""
    if epoch != profile.cookie_epoch:
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
    old = profile.cookie_epoch
    while profile.cookie_epoch == old:
        profile.cookie_epoch = new_cookie_epoch()
    profile.revoked = []
