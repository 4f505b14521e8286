"""The one exception type users see: a message that names the fix."""
from __future__ import annotations


class BuyingStageError(RuntimeError):
    """A problem the user can fix; the message says how.

    The CLI prints it as one line and exits with code 2.
    """


def missing_extra(package: str, extra: str) -> BuyingStageError:
    """The error for an optional dependency that is not installed."""
    return BuyingStageError(
        f"{package} is not installed; it comes with the '{extra}' extra: "
        f"pip install 'buyingstage[{extra}]'"
    )
