"""The exceptions the daemon knows how to act on.

Each branch of the hierarchy maps to one reaction, so workers decide by type, never by message:

- ConfigError: refuse to start (or keep the running rules) and say file, key and line.
- AccountError: stop sending anything until the user fixes the key or buys credit.
- FileRejected: fail this one file, tell the user why; the others go on.
- TransientError: wait with backoff and try again; never fail a job for it. Raised for a
  submission only when it surely did not reach the service: NotConnected (no connection was
  made) and CutBeforeSent (cut before the whole file was handed over) say how sure.
- ConversionCut: the submission may have arrived but the reply was lost; poll by name.
- UnknownRemoteName: the service does not know that name *now* (it may learn it late, or
  have lost it): keep asking for a while, then let the user decide. Never a reason to pay again.
- ServiceLosingJobs: several paid submissions were lost in a short time; stop sending.
"""

from __future__ import annotations

# The exit code of a command that did what it was asked; each command names its own failures.
EXIT_OK = 0


class WatcherError(Exception):
    """Base for every error the program expects and can explain to a user."""


class ConfigError(WatcherError):
    """A rules file that cannot be used, located as precisely as the file allows."""

    def __init__(self, path: str, message: str, *, key: str = "", line: int | None = None):
        self.path = path
        self.key = key
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line else path
        what = f"{key}: {message}" if key else message
        super().__init__(f"{where}: {what}")


class ApiError(WatcherError):
    """Trouble reported by (or on the way to) the conversion service."""

    def __init__(self, message: str, *, retcode: str = ""):
        self.message = message
        self.retcode = retcode
        super().__init__(message)


class AccountError(ApiError):
    """The key is unknown or disabled: every further request would fail the same way."""


class CreditError(AccountError):
    """The account has too few pages left for this conversion."""


class EndpointMoved(AccountError):
    """The service's address answered a submission with a redirect: the rules file must name
    the new one. The submission went out whole, so it is asked about before it is resent."""


class FileRejected(ApiError):
    """This file cannot be converted (refused locally before paying, or by the service)."""


class TransientError(ApiError):
    """Offline, overloaded or rate-limited before the upload finished: safe to try again."""

    def __init__(self, message: str, *, retcode: str = "", retry_after: float | None = None):
        super().__init__(message, retcode=retcode)
        self.retry_after = retry_after


class NotConnected(TransientError):
    """No connection to the service could be made: nothing of the request left this computer."""


class CutBeforeSent(TransientError):
    """The connection broke while the file was still being sent: the service cannot have a
    whole file to convert. Sent again by itself, but only a few times (watcher.jobs)."""


class BadDownload(TransientError):
    """The result could not be fetched whole; fetch it again (the conversion is already paid)."""


class ConversionCut(ApiError):
    """The connection was cut after the upload finished; the conversion may be going on."""


class UnknownRemoteName(ApiError):
    """A status poll for a name the service says it does not know (now)."""


class TakenOver(WatcherError):
    """Another PC on a shared inbox owns this file now (its claim, watcher.claims)."""


class ServiceLosingJobs(AccountError):
    """The service lost several paid submissions in a short time: the whole queue stops until
    the user has looked at the account, since every further submission may be lost too."""
