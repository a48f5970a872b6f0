"""The one exception tree of Ferryman.

Every failure a user can see is one of these; low-level exceptions (asyncssh, OSError,
SQLAlchemy, subprocess) are caught at the edge where they happen and turned into one of them,
with the context a person needs to act (host, stage, command, exit code, tail of stderr).

    FerrymanError                 code                 HTTP  exit
    ├── ConfigError               config_invalid       422   2  bad YAML / settings / API body
    ├── ValidationError           invalid_input        422   2  a bad ref, host, path, name
    ├── AuthenticationFailed      unauthenticated      401   2
    ├── PermissionDenied          forbidden            403   2  the role does not allow it
    │   ├── InsufficientScope     insufficient_scope   403   2  a read-only token tried to write
    │   ├── CsrfFailed            csrf_failed          403   2  cookie request without CSRF token
    │   ├── ApprovalRequired      approval_required    403   2  the env needs an approved ticket
    │   └── OwnTicket             own_ticket           403   2  nobody approves their own ticket
    ├── NotFound                  not_found            404   2  also: not in any of your spaces
    ├── Conflict                  conflict             409   1  state forbids it (deploy running)
    │   ├── LockHeld              lock_held            409   1  project+env lock held elsewhere
    │   ├── InvalidTransition     invalid_transition   409   1  ticket cannot go from here to there
    │   ├── TooEarly              too_early            409   1  a scheduled ticket before its time
    │   ├── ApprovalStale         approval_stale       409   1  what runs changed since approval
    │   └── OwnershipLost         ownership_lost       409   1  a worker's deploy was taken over
    ├── Cancelled                 cancelled            409   1  a deploy stopped on request
    ├── PayloadTooLarge           payload_too_large    413   1  a request body past its limit
    ├── DatabaseUnavailable       database_unavailable 503   1  an outage: try again later
    ├── RateLimited               rate_limited         429   1  too many failed sign-ins
    ├── VcsError                  vcs_failed           502   1  git / svn failed
    ├── RemoteError               remote_failed        502   1  a command on a host failed
    ├── TaskFailed                task_failed          502   1  a hook on the deploy host failed
    ├── StageTimeout              timeout              504   1  a command or task ran too long
    ├── BackupFailed              backup_failed        500   1  a dump or load tool failed
    └── InternalError             internal_error       500   1  Ferryman contradicted itself

The API maps each to its ``code`` (stable, documented) and HTTP status; the CLI prints one line.
"""

from __future__ import annotations

from typing import Any


class FerrymanError(Exception):
    code = "error"
    http_status = 500
    exit_code = 1

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class ConfigError(FerrymanError):
    code = "config_invalid"
    http_status = 422
    exit_code = 2

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message, errors=errors or [])
        self.errors = errors or []

    def __str__(self) -> str:
        if not self.errors:
            return self.message
        return self.message + "\n" + "\n".join(f"  {e}" for e in self.errors)


class ValidationError(FerrymanError):
    code = "invalid_input"
    http_status = 422
    exit_code = 2


class AuthenticationFailed(FerrymanError):
    code = "unauthenticated"
    http_status = 401
    exit_code = 2


class PermissionDenied(FerrymanError):
    code = "forbidden"
    http_status = 403
    exit_code = 2


class NotFound(FerrymanError):
    code = "not_found"
    http_status = 404
    exit_code = 2


class InsufficientScope(PermissionDenied):
    code = "insufficient_scope"


class CsrfFailed(PermissionDenied):
    code = "csrf_failed"


# A page's form posted with another session's token, a forged one or none at all.
STALE_FORM = "the form is stale or was not sent by this site: reload the page"


class ApprovalRequired(PermissionDenied):
    code = "approval_required"


class OwnTicket(PermissionDenied):
    code = "own_ticket"


class Conflict(FerrymanError):
    code = "conflict"
    http_status = 409


class LockHeld(Conflict):
    code = "lock_held"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class TooEarly(Conflict):
    code = "too_early"


class ApprovalStale(Conflict):
    """What a ticket would run changed after it was approved; it goes back to review."""

    code = "approval_stale"


class OwnershipLost(Conflict):
    """This worker no longer owns the deploy: another took it over (its lease ran out) or the
    project lock is gone. The run stops before its next host action, undoes nothing on hosts
    (the new owner puts them in order) and writes no outcome; a write fenced by the owner
    (``services.deploy_records``) raises it instead of writing."""

    code = "ownership_lost"


class Cancelled(FerrymanError):
    """A running deploy was asked to stop; raised at the next safe point."""

    code = "cancelled"
    http_status = 409


class DatabaseUnavailable(FerrymanError):
    """The database cannot be reached now (down, restarting, busy): worth trying again."""

    code = "database_unavailable"
    http_status = 503


class PayloadTooLarge(FerrymanError):
    code = "payload_too_large"
    http_status = 413


class RateLimited(FerrymanError):
    code = "rate_limited"
    http_status = 429


class VcsError(FerrymanError):
    code = "vcs_failed"
    http_status = 502


class TaskFailed(FerrymanError):
    code = "task_failed"
    http_status = 502


class StageTimeout(FerrymanError):
    code = "timeout"
    http_status = 504


class BackupFailed(FerrymanError):
    """``ferryman backup``/``restore``: pg_dump, mariadb-dump or their loaders failed."""

    code = "backup_failed"
    http_status = 500


class InternalError(FerrymanError):
    """Ferryman found its own state inconsistent: a value an earlier step always sets is
    missing, a row this transaction just wrote cannot be read back. A bug, never the user's
    doing; the message says what was expected, for the report."""

    code = "internal_error"
    http_status = 500


class RemoteError(FerrymanError):
    """A command on a host failed: names the host, stage, command, exit code and stderr tail."""

    code = "remote_failed"
    http_status = 502

    def __init__(
        self,
        message: str,
        *,
        host: str,
        stage: str = "",
        command: str = "",
        exit_status: int | None = None,
        stderr_tail: str = "",
    ) -> None:
        super().__init__(
            message,
            host=host,
            stage=stage,
            command=command,
            exit_status=exit_status,
            stderr_tail=stderr_tail,
        )
        self.host = host
        self.stage = stage
        self.command = command
        self.exit_status = exit_status
        self.stderr_tail = stderr_tail

    def __str__(self) -> str:
        where = f"{self.host}" + (f" [{self.stage}]" if self.stage else "")
        text = f"{where}: {self.message}"
        if self.exit_status is not None:
            text += f" (exit {self.exit_status})"
        if self.stderr_tail:
            text += f": {telling_line(self.stderr_tail)[:300]}"
        return text


# Causes a person must see even when a command's last line is a generic one after them
# (``tar: Exiting with failure status due to previous errors``).
CAUSES = ("No space left on device", "Disk quota exceeded", "Read-only file system")
_GENERIC = ("Exiting with failure status due to previous errors", "Error is not recoverable")


def telling_line(tail: str) -> str:
    """The line of a stderr tail that says why: the last naming a cause in ``CAUSES``, else
    the last that is not a generic sign-off, else the last."""
    lines = [line.strip() for line in tail.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if any(cause in line for cause in CAUSES):
            return line
    for line in reversed(lines):
        if not any(generic in line for generic in _GENERIC):
            return line
    return lines[-1] if lines else ""


class RolloutFailed(FerrymanError):
    """A gray release stopped: more hosts failed than allowed (or the canary failed, or
    someone aborted it). Names the host and what failed on it."""

    code = "rollout_failed"
    http_status = 502
