"""Pull mode on the server: host tokens, the index of what is due per host (answered from
memory, refreshed from the database twice a second, so a poll for nothing costs a dict
lookup), the tasks the worker hands out batch by batch, and what hosts report.

A token of a disabled space is refused like an unknown one. Optional request signing is keyed
by the host's *signing key* — HMAC-SHA256 of the token's hash under a server secret (stored
sealed in ``server_facts``), handed out with the token at registration — never by the bearer
token itself, so whoever sees a token on the wire or in a proxy log cannot sign with it.

Tasks are a queue of ``db/claims.py`` (``TASKS``) claimed by hosts: a host fetching its due
task claims it (``take``: ``due`` → ``running`` under a holder token and a lease until its
run's deadline, in the database's clock), and the script it gets carries the token in every
report — the fence: ``report`` takes only the reports of the claim that holds the task, so a
run of a task that was handed out again (taken over) can write nothing. The worker waiting on
the deploy judges the deadlines (``mark_unreachable``): a late deploy task ends
``unreachable``; a late rollback task's lease is ended (``claims.expire``) so that its host's
next fetch takes it over with a new claim."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ferryman.config.project import parse_project
from ferryman.db import claims
from ferryman.db.clock import db_now
from ferryman.db.models import (
    ACTIVE_STATUSES,
    AgentTask,
    AgentToken,
    Deploy,
    DeployHost,
    KeyValue,
    Project,
    Space,
    utcnow,
)
from ferryman.db.session import Database, rowcount
from ferryman.domain import pull as pull_states
from ferryman.domain import validate
from ferryman.domain.masking import Masker
from ferryman.domain.statuses import HostStatus, PullTaskStatus, ReleaseState
from ferryman.errors import (
    AuthenticationFailed,
    Conflict,
    InternalError,
    NotFound,
    PermissionDenied,
)
from ferryman.services import deploy_records
from ferryman.services.audit import Actor, record
from ferryman.services.spaces import visible_space

ACTIVE, FINAL = pull_states.ACTIVE, pull_states.FINAL
REFRESH_SECONDS = 0.5
TOKEN_CACHE_SECONDS = 30.0  # a revoked token stops working within this
REPLAY_WINDOW = 300.0
OUTPUT_LIMIT = 16_000
SIGNING_SECRET = "agent_signing_secret"  # server_facts key: sealed, made on first use
# the queue of due tasks: a host claims its oldest due one when it fetches it, and holds it
# as ``running`` under its holder token until it reports a last word or its lease ends
TASKS = claims.Queue(
    AgentTask,
    ready=(PullTaskStatus.DUE,),
    held=PullTaskStatus.RUNNING,
    due="due_at",
    order="id",
)
LEASE = 3600.0  # a task's lease when its deploy's config cannot say (see ``_run_within``)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- tokens ----------------------------------------------------------------------------------


def register(db: Database, actor: Actor, space: int | str, host: str) -> dict[str, Any]:
    """A new token for ``host`` (its earlier tokens stop working); shown once."""
    key = validate.host(host).key
    token = "fma_" + secrets.token_urlsafe(32)
    with db.transaction() as s:
        found = visible_space(s, actor, space, "server.manage")
        s.execute(
            update(AgentToken)
            .where(AgentToken.space_id == found.id, AgentToken.host == key)
            .values(revoked=True)
        )
        s.add(
            AgentToken(
                space_id=found.id, host=key, token_hash=_hash(token), created_by=actor.username
            )
        )
        record(s, actor, "agent.register", f"space:{found.name}/agent:{key}", space_id=found.id)
    _tokens.clear()
    return {
        "host": key,
        "space": found.name,
        "token": token,
        "signing_key": signing_key(db, token),
    }


def revoke(db: Database, actor: Actor, space: int | str, host: str) -> None:
    key = validate.host(host).key
    with db.transaction() as s:
        found = visible_space(s, actor, space, "server.manage")
        done = s.execute(
            update(AgentToken)
            .where(AgentToken.space_id == found.id, AgentToken.host == key)
            .values(revoked=True)
        )
        if not rowcount(done):
            raise NotFound(f"{key} has no agent token in {found.name}")
        record(s, actor, "agent.revoke", f"space:{found.name}/agent:{key}", space_id=found.id)
    _tokens.clear()


_tokens: dict[str, tuple[float, int, str]] = {}  # hash -> (checked at, space id, host)
_tokens_lock = threading.Lock()


def authenticate(db: Database, token: str, host: str) -> int:
    """The space of a host token that belongs to ``host`` (401 unknown, revoked or of a
    disabled space; 403 another host's)."""
    digest = _hash(token)
    now = time.monotonic()
    cached = _tokens.get(digest)
    if cached is None or now - cached[0] > TOKEN_CACHE_SECONDS:
        with db.read() as s:
            row = s.scalar(
                select(AgentToken)
                .join(Space, Space.id == AgentToken.space_id)
                .where(
                    AgentToken.token_hash == digest,
                    AgentToken.revoked.is_(False),
                    Space.is_active.is_(True),
                )
            )
            if row is None:
                with _tokens_lock:
                    _tokens.pop(digest, None)
                raise AuthenticationFailed("unknown or revoked agent token")
            cached = (now, row.space_id, row.host)
        with _tokens_lock:
            _tokens[digest] = cached
    if cached[2] != host:
        raise PermissionDenied(f"this token belongs to {cached[2]}, not {host}")
    return cached[1]


_secrets: dict[str, bytes] = {}  # database URL -> the server's signing secret, once read


def _signing_secret(db: Database) -> bytes:
    if db.url in _secrets:
        return _secrets[db.url]
    with db.read() as s:
        row = s.get(KeyValue, SIGNING_SECRET)
        sealed = row.value if row is not None else ""
    if not sealed:
        sealed = db.box.seal(secrets.token_hex(32))
        try:
            with db.transaction() as s:
                s.add(KeyValue(key=SIGNING_SECRET, value=sealed))
        except IntegrityError:  # another server made it first: use theirs
            with db.read() as s:
                row = s.get(KeyValue, SIGNING_SECRET)
                if row is None:
                    raise InternalError("the pull-mode signing secret vanished") from None
                sealed = row.value
    value = db.box.open(sealed).encode()
    _secrets[db.url] = value
    return value


def signing_key(db: Database, token: str) -> str:
    """The host's key for signing requests: derived from the token's hash under the server's
    secret, so the token alone (or the database's hash of it) cannot make it."""
    message = b"ferryman-agent-signing\0" + _hash(token).encode()
    return hmac.new(_signing_secret(db), message, hashlib.sha256).hexdigest()


def verify_signature(
    db: Database, token: str, timestamp: str, signature: str, method: str, path: str, body: bytes
) -> None:
    """Optional request signing: ``X-Ferryman-Signature`` = hex HMAC-SHA256 with the host's
    :func:`signing_key` of ``timestamp\\nMETHOD\\npath\\nsha256(body)``,
    ``X-Ferryman-Timestamp`` within 5 minutes."""
    try:
        moment = float(timestamp)
    except ValueError:
        raise AuthenticationFailed("X-Ferryman-Timestamp is not a number") from None
    if not math.isfinite(moment) or abs(time.time() - moment) > REPLAY_WINDOW:
        raise AuthenticationFailed("the request signature is too old (or from the future)")
    message = f"{timestamp}\n{method}\n{path}\n{hashlib.sha256(body).hexdigest()}".encode()
    key = signing_key(db, token).encode()
    wanted = hmac.new(key, message, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(wanted.encode(), signature.encode()):
        raise AuthenticationFailed("bad request signature")


# --- what is due -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    task_id: int
    deploy_id: int
    status: str
    action: str
    claim: str = ""  # a digest of its claim (holder token and lease): "" while none

    @property
    def etag(self) -> str:
        """The task and its claim: a host that fetched its script answers with this and gets
        ``304``. A change of claim — handed out, or its lease ended for a takeover — is a new
        ETag, so the poller (which sends the one it stored) fetches again and takes it over."""
        return f'"task-{self.task_id}-{self.claim}"' if self.claim else f'"task-{self.task_id}"'


class DueIndex:
    """{(space, host): Due} of every due or running task, refreshed from the database at most
    every ``REFRESH_SECONDS`` (so every server of a cluster sees the worker's batches)."""

    def __init__(self) -> None:
        self._at = 0.0
        self._due: dict[tuple[int, str], Due] = {}
        self._lock = threading.Lock()

    def get(self, db: Database, space_id: int, host: str) -> Due | None:
        if time.monotonic() - self._at > REFRESH_SECONDS:
            self.refresh(db)
        return self._due.get((space_id, host))

    def refresh(self, db: Database) -> None:
        with self._lock:
            if time.monotonic() - self._at <= REFRESH_SECONDS:
                return
            with db.read() as s:
                rows = s.execute(
                    select(
                        AgentTask.space_id,
                        AgentTask.host,
                        AgentTask.id,
                        AgentTask.deploy_id,
                        AgentTask.status,
                        AgentTask.action,
                        AgentTask.claimed_by,
                        AgentTask.lease_until,
                    )
                    .where(AgentTask.status.in_(ACTIVE))
                    .order_by(AgentTask.id)
                ).all()
            due: dict[tuple[int, str], Due] = {}
            for r in rows:  # the oldest per host: the one ``take`` hands out
                due.setdefault((r[0], r[1]), Due(r[2], r[3], r[4], r[5], _claim_tag(r[6], r[7])))
            self._due = due
            self._at = time.monotonic()

    def forget(self) -> None:
        self._at = 0.0


index = DueIndex()


def _claim_tag(holder: str | None, lease_until: Any) -> str:
    """A short digest of a task's claim for its ETag: "" for a task never claimed."""
    if not holder and lease_until is None:
        return ""
    stamp = lease_until.isoformat() if lease_until is not None else ""
    return hashlib.sha256(f"{holder or ''}|{stamp}".encode()).hexdigest()[:12]


def _serialized(s: Session) -> None:
    """On SQLite, take the database's write lock before reading what is about to change (it
    has no row locks: a read would not see a write committed before this one's own);
    PostgreSQL and MariaDB lock the rows read ``FOR UPDATE`` instead."""
    if s.get_bind().dialect.name == "sqlite":
        s.execute(text("BEGIN IMMEDIATE"))


def _task(
    db_session: Session, space_id: int, host: str, task_id: int, lock: bool = False
) -> AgentTask:
    task = db_session.get(AgentTask, task_id, with_for_update=lock)
    if task is None or task.host != host or task.space_id != space_id:
        raise PermissionDenied(f"task #{task_id} is not {host}'s")
    return task


def _run_within(deploy: Deploy | None) -> float:
    """Seconds a host has from fetching its task to its last word: the deadline the worker
    waiting on the deploy judges it by (``pipeline/pull.py``), and the lease of its claim."""
    if deploy is None:
        return LEASE
    try:
        env = parse_project(deploy.config).environment(deploy.env)
        return env.pull.unreachable_after + env.pull.download_timeout + env.task_timeout * 3
    except Exception:  # a config that no longer parses: the task still gets a deadline
        return LEASE


def take(db: Database, space_id: int, host: str) -> tuple[AgentTask, Deploy, Project] | None:
    """The host's due task, now ``running`` (the script is being fetched) under a new claim
    of the host's, with its deploy. A task the host runs already is handed out again only
    once its lease ended (its deadline passed: taken over, and the earlier run is fenced)."""
    with db.transaction() as s:
        _serialized(s)
        task = s.scalar(
            select(AgentTask)
            .where(
                AgentTask.space_id == space_id,
                AgentTask.host == host,
                AgentTask.status.in_(ACTIVE),
            )
            .order_by(AgentTask.id)
            .limit(1)
            .with_for_update()  # a cancel committing meanwhile is seen, not overwritten
        )
        if task is None:
            return None
        deploy = s.get(Deploy, task.deploy_id)
        project = s.get(Project, deploy.project_id) if deploy else None
        if deploy is None or project is None:
            raise InternalError(f"task #{task.id} has no deploy or project")
        # conditional on its state as read: a cancel committed meanwhile is never undone
        # (SQLite takes no row lock for the read above), and a held task is not taken
        now = db_now(s)
        claim = claims.claim_row(
            s,
            TASKS,
            task.id,
            host,
            _run_within(deploy),
            now,
            values={"fetched_at": now},  # compared by mark_unreachable
        )
        if claim is None:
            return None
        s.refresh(task)
        s.flush()  # the change is written before the objects are handed out
        s.expunge_all()
    index.forget()
    return task, deploy, project


def artifact_of(db: Database, space_id: int, host: str, release: str) -> Deploy:
    """The deploy whose artifact ``host`` may download (it has a task for that release)."""
    with db.read() as s:
        task = s.scalar(
            select(AgentTask)
            .where(
                AgentTask.space_id == space_id,
                AgentTask.host == host,
                AgentTask.release == release,
                AgentTask.action == "deploy",
            )
            .order_by(AgentTask.id.desc())
        )
        if task is None:
            raise PermissionDenied(f"{host} has no deploy of {release}")
        deploy = s.get(Deploy, task.deploy_id)
        if deploy is None:
            raise NotFound(f"no deploy of {release}")
        s.expunge(deploy)
        return deploy


def report(
    db: Database,
    space_id: int,
    host: str,
    task_id: int,
    phase: str,
    exit_code: int,
    output: str,
    status: str = "",
    previous: str = "",
    claim: str = "",
) -> None:
    """A phase's exit code and output (its tail) from a host; ``status`` when it is the last
    word (success, failed, rolled_back, skipped). Shown in the console like push hosts.

    Taken only from the claim that holds the task (``claim``: the holder token its script
    carries; a task handed out before claims had none, and neither had its script): a run of
    a task that was taken over since gets ``Conflict`` and records nothing.

    Taken only while the deploy is active, checked with its row locked and written in the
    same transaction: a late host (the deploy was cancelled, failed or recovered meanwhile)
    gets ``Conflict``, records nothing, and must not switch or switches back
    (``commands/agent_script.py``). The same last word twice (a retry after a lost answer)
    is taken once."""
    if status and status not in FINAL:
        raise Conflict(f"status: one of {', '.join(FINAL)}")
    with db.read() as s:
        deploy_id = _task(s, space_id, host, task_id).deploy_id
    tail = _masker(db, deploy_id)(output)[-OUTPUT_LIMIT:]  # a hook may print a secret
    last_word = f"{phase}: exit {exit_code}"
    ended = ""
    with db.transaction() as s:
        _serialized(s)
        task = _task(s, space_id, host, task_id, lock=True)
        # a rollback the host fetched, then ran after its deadline: what it did is the truth
        late_rollback = (
            task.action == "rollback"
            and task.status == PullTaskStatus.UNREACHABLE
            and task.fetched_at
        )
        if task.status in FINAL and not late_rollback:
            if status == task.status and task.detail == last_word and task.claimed_by == claim:
                return
            raise Conflict(f"task #{task_id} is already {task.status}")
        if task.status != PullTaskStatus.RUNNING and not late_rollback:
            raise Conflict(f"task #{task_id} was never handed to {host} (it is {task.status})")
        if task.status == PullTaskStatus.RUNNING and task.claimed_by != claim:  # the fence
            raise Conflict(f"task #{task_id} was handed out again: this run of it is over")
        deploy = s.get(Deploy, deploy_id, with_for_update=True)
        # a rollback a host carried out is recorded whenever it reports: it restored what
        # the host served; a deploy's report counts only while the deploy is active
        ended_deploy = deploy is None or deploy.status not in ACTIVE_STATUSES
        if deploy is None or (ended_deploy and task.action == "deploy"):
            ended = deploy.status if deploy is not None else "deleted"
            task.status, task.finished_at = PullTaskStatus.CANCELLED, utcnow()
            task.detail = f"{phase}: reported after the deploy ended ({ended})"
            claims.let_go(TASKS, task, keep_holder=True)
        else:
            task.phase = phase[:32]
            if previous and not task.previous:
                task.previous = previous[:255]
            if status:
                task.status, task.finished_at, task.detail = status, utcnow(), last_word
                claims.let_go(TASKS, task, keep_holder=True)  # a retry of it is recognised
            _record_report(s, task, deploy, tail, last_word, status)
    if ended or status:
        index.forget()
    if ended:
        raise Conflict(f"deploy #{deploy_id} has ended ({ended}): {host} must not switch")


def _record_report(
    s: Session, task: AgentTask, deploy: Deploy, tail: str, last_word: str, status: str
) -> None:
    """A host's report in its deploy's record: the output's lines, and with a last word the
    host's row and (success, rolled back) the release it now serves."""
    now, host, stage = utcnow(), task.host, task.phase
    lines = [
        deploy_records.LogRecord(text=line, host=host, stage=stage, stream="stdout", ts=now)
        for line in tail.splitlines()
    ]
    lines.append(
        deploy_records.LogRecord(
            text=last_word + (f" ({status})" if status else ""), host=host, stage=stage, ts=now
        )
    )
    deploy_records.append_logs_in(s, deploy.id, lines)
    if not status:
        return
    done = (PullTaskStatus.SUCCESS, PullTaskStatus.SKIPPED)  # skipped: it serves the release
    host_status = HostStatus.SUCCESS if status in done else status
    deploy_records.set_hosts_in(s, deploy.id, {host: {"status": host_status}})
    if status == PullTaskStatus.SUCCESS:
        # a rollback to nothing (the host had no release before a first deploy) unlinked it
        deploy_records.set_live_in(
            s, deploy.project_id, deploy.env, deploy.id, {host: task.release or None}
        )
        if task.action == "deploy":
            deploy_records.record_releases_in(
                s,
                deploy.project_id,
                deploy.env,
                deploy.id,
                deploy.commit or "",
                task.release,
                [host],
                ReleaseState.COMPLETE,
            )
    elif status == PullTaskStatus.ROLLED_BACK and task.previous:
        deploy_records.set_live_in(
            s, deploy.project_id, deploy.env, deploy.id, {host: task.previous}
        )


def _masker(db: Database, deploy_id: int) -> Masker:
    """The deploy's own secret values, masked in what its hosts report (as push mode's
    recorder masks what its hooks print)."""
    from ferryman.services.deploy_views import secret_masker

    with db.read() as s:
        deploy = s.get(Deploy, deploy_id)
        return secret_masker(db, deploy) if deploy is not None else Masker([])


# --- the worker's side -----------------------------------------------------------------------
# Each write takes the run's ``owner`` — the holder token of its claim — and is made only
# while that claim holds the deploy (``deploy_records.fence``, as every record a run writes;
# None: unchecked, for callers that hold no claim): a run whose deploy was taken over while
# it froze, or whose retry through an outage comes after the take-over, hands out, cancels
# and marks nothing (``OwnershipLost``). Where task rows are changed, they are locked before
# the deploy's row, the order a host's report takes them in (``report``).


def create_tasks(
    db: Database,
    deploy_id: int,
    space_id: int,
    hosts: list[str],
    action: str,
    release: str,
    previous: dict[str, str] | None = None,
    owner: str | None = None,
) -> None:
    with db.transaction() as s:
        _serialized(s)
        deploy_records.fence(s, deploy_id, owner)
        for host in hosts:
            s.add(
                AgentTask(
                    deploy_id=deploy_id,
                    space_id=space_id,
                    host=host,
                    action=action,
                    release=release if action == "deploy" else (previous or {}).get(host, ""),
                    previous=(previous or {}).get(host, "") if action == "deploy" else "",
                    status=PullTaskStatus.PENDING,
                )
            )


def make_due(
    db: Database,
    deploy_id: int,
    hosts: list[str],
    action: str = "deploy",
    owner: str | None = None,
) -> None:
    with db.transaction() as s:
        _serialized(s)
        s.execute(
            update(AgentTask)
            .where(
                AgentTask.deploy_id == deploy_id,
                AgentTask.host.in_(hosts),
                AgentTask.action == action,
                AgentTask.status == PullTaskStatus.PENDING,
            )
            .values(status=PullTaskStatus.DUE, due_at=db_now(s))
        )
        deploy_records.fence(s, deploy_id, owner)
    index.forget()


def task_states(
    db: Database, deploy_id: int, action: str = "deploy"
) -> dict[str, pull_states.HostTask]:
    """{host: its task's state} for the worker waiting on them."""
    return {
        host: pull_states.HostTask(task.status, task.previous or "", went_ahead=bool(task.phase))
        for host, task in tasks_of(db, deploy_id, action).items()
    }


def tasks_of(db: Database, deploy_id: int, action: str = "deploy") -> dict[str, AgentTask]:
    with db.read() as s:
        rows = s.scalars(
            select(AgentTask).where(AgentTask.deploy_id == deploy_id, AgentTask.action == action)
        ).all()
        s.expunge_all()
    return {r.host: r for r in rows}


OVERDUE = "overdue: rolls back when the host polls again"


def mark_unreachable(
    db: Database,
    deploy_id: int,
    fetch_within: float,
    run_within: float,
    owner: str | None = None,
) -> list[str]:
    """Hosts whose task is past its deadline (not fetched within ``fetch_within``, or not
    reported within ``run_within`` of fetching). A deploy task becomes ``unreachable``. A
    rollback task stays handed out — the host may have switched, and rolls back whenever it
    polls again — and only its host row says it is overdue. Each change is conditional on
    the task's state as read, so a report taken meanwhile is never overwritten."""
    late: list[str] = []
    newly: dict[str, dict[str, str]] = {}
    with db.transaction() as s:
        _serialized(s)
        now = db_now(s)  # due_at and fetched_at are the database's time too
        tasks = s.execute(
            select(
                AgentTask.id,
                AgentTask.host,
                AgentTask.action,
                AgentTask.status,
                AgentTask.due_at,
                AgentTask.fetched_at,
                AgentTask.detail,
            )
            .where(AgentTask.deploy_id == deploy_id, AgentTask.status.in_(ACTIVE))
            .with_for_update()
        ).all()
        deploy_records.fence(s, deploy_id, owner)
        for task_id, host, action, status, due_at, fetched_at, detail in tasks:
            if not (
                (
                    status == PullTaskStatus.DUE
                    and due_at
                    and now - due_at > timedelta(seconds=fetch_within)
                )
                or (
                    status == PullTaskStatus.RUNNING
                    and fetched_at
                    and now - fetched_at > timedelta(seconds=run_within)
                )
            ):
                continue
            same = (AgentTask.id == task_id, AgentTask.status == status)
            if action == "rollback":
                late.append(host)
                if detail != OVERDUE and rowcount(
                    s.execute(update(AgentTask).where(*same).values(detail=OVERDUE))
                ):
                    newly[host] = {"status": HostStatus.UNREACHABLE, "error": OVERDUE}
                if status == PullTaskStatus.RUNNING:  # its host's next fetch takes it over
                    claims.expire(s, TASKS, task_id, where=(AgentTask.lease_until > now,))
                continue
            why = "did not poll in time" if not fetched_at else "never reported back"
            if rowcount(
                s.execute(
                    update(AgentTask)
                    .where(*same)
                    .values(
                        status=PullTaskStatus.UNREACHABLE,
                        finished_at=now,
                        detail=why,
                        lease_until=None,
                    )
                )
            ):
                late.append(host)
                newly[host] = {"status": HostStatus.UNREACHABLE, "error": "no report"}
        if newly:  # with the tasks, fenced alike
            deploy_records.set_hosts_in(s, deploy_id, newly)
    if newly:
        index.forget()
    return late


def cancel_open(db: Database, deploy_id: int, owner: str | None = None) -> None:
    """Stop handing out a deploy: its pending and due tasks are cancelled, and so is a deploy
    task a host is running — its next report is refused, and the host stops before its
    switch or switches back by itself (``commands/agent_script.py``)."""
    with db.transaction() as s:
        _serialized(s)
        s.execute(
            update(AgentTask)
            .where(
                AgentTask.deploy_id == deploy_id,
                AgentTask.status.in_((PullTaskStatus.PENDING, PullTaskStatus.DUE)),
            )
            .values(status=PullTaskStatus.CANCELLED, finished_at=utcnow())
        )
        s.execute(
            update(AgentTask)
            .where(
                AgentTask.deploy_id == deploy_id,
                AgentTask.action == "deploy",
                AgentTask.status == PullTaskStatus.RUNNING,
            )
            .values(
                status=PullTaskStatus.CANCELLED,
                finished_at=utcnow(),
                detail="the deploy stopped while the host ran it",
                lease_until=None,  # the claim ends; its next report is refused
            )
        )
        deploy_records.fence(s, deploy_id, owner)
    index.forget()


def host_rows(db: Database, deploy_id: int, owner: str | None = None) -> None:
    """Every host of a pull deploy appears in the deploy's hosts (pending) from the start."""
    with db.transaction() as s:
        _serialized(s)
        deploy_records.fence(s, deploy_id, owner)
        known = set(s.scalars(select(DeployHost.host).where(DeployHost.deploy_id == deploy_id)))
        for host in s.scalars(
            select(AgentTask.host).where(AgentTask.deploy_id == deploy_id).distinct()
        ):
            if host not in known:
                s.add(DeployHost(deploy_id=deploy_id, host=host, status=HostStatus.PENDING))
