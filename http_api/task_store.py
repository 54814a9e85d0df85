"""BentoML tasks kept in this worker's memory, never on disk: uploads and results are faces (personal data).

BentoML keeps tasks in an SQLite file (the upload too, for /retry) for 24 hours and cannot cancel a running one.
Here a task is a running request of this API worker: submitted (its body read within the service's upload limits),
run as an asyncio task with a deadline, its progress readable in /status, cancellable by /cancel (its model work
stops at the next chunk), and its answer kept for SWAPAROONY_TASK_RESULT_S after it ends, then dropped. The upload
is never kept, so /retry answers that a task is submitted again instead. patches.in_memory_tasks() puts this in
BentoML's place; task_relay.py answers for a task held by another API worker of the same replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime
import json
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

from _bentoml_impl.tasks.result import CompletedResultRow, ResultRow, ResultStatus, ResultStore
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from swaparoony.imaging.decode_queue import CLIENT_KEY
from swaparoony.progress import Progress

logger = logging.getLogger("swaparoony")
PROGRESS: contextvars.ContextVar[Progress | None] = contextvars.ContextVar("swaparoony_task_progress", default=None)
"""The progress of the task the current request runs as (None: a plain request); the engine moves it on."""


def task_progress() -> Progress | None:
    """The progress of the task this request runs as; None for a plain request."""
    return PROGRESS.get()


KEPT_PER_TASK = 4
"""Answers already fetched are kept (for another look) up to this many times SWAPAROONY_MAX_TASKS, oldest dropped first."""
CANCEL_WAIT_S = 5.0
"""How long /cancel waits for the task to stop before it answers with the status as it is."""
Run = Callable[[str, Request], Coroutine[Any, Any, Response]]
"""BentoML's way of answering an API by name for a request: what a task runs."""


@dataclass
class Answer:
    """A finished task's response, kept as its parts (a Response object is sent once)."""

    status_code: int
    body: bytes
    headers: list[tuple[bytes, bytes]]

    def response(self) -> Response:
        answer = Response(self.body, status_code=self.status_code)
        answer.raw_headers = list(self.headers)
        return answer


@dataclass
class Entry:
    """One task: what it is, where it stands, and its answer once it has one."""

    name: str
    created_at: datetime.datetime
    client: str = ""
    """Who submitted it (http_api/client_key.py): one client holds at most a quarter of the worker's tasks."""
    status: ResultStatus = ResultStatus.IN_PROGRESS
    executed_at: datetime.datetime | None = None
    completed_at: datetime.datetime | None = None
    progress: Progress = field(default_factory=Progress)
    answer: Answer | None = None
    fetched: bool = False
    """Whether its answer was taken (GET .../get): kept for another look, no longer counted against the limits."""
    reason: str | None = None
    job: asyncio.Task[Response] | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)


Operation = Literal["status", "get", "cancel"]
"""What a client asks of a task by its id: what BentoML's /status, /get and /cancel routes answer."""


class TaskFull(RuntimeError):
    """This worker holds as many tasks as it may."""


class MemoryTaskStore(ResultStore[Request | None, Response]):
    """This worker's tasks by id; a finished one is dropped `keep_s` after it ends."""

    def __init__(self, keep_s: float, deadline_s: float, max_tasks: int, owner: str, max_running: int = 4) -> None:
        self.keep_s = keep_s
        self.deadline_s = deadline_s
        self.max_tasks = max_tasks
        self.per_client = max(1, max_tasks // 4)
        """Tasks one client may hold here, so that one client cannot take every slot."""
        self.owner = owner
        """Begins every task id this worker gives out, so another worker knows whom to ask (task_relay.py)."""
        self.entries: dict[str, Entry] = {}
        self.running = asyncio.Semaphore(max_running)
        """Tasks that work at once; the others wait, queued (a task is not a request the admission middleware holds)."""

    async def __aenter__(self) -> MemoryTaskStore:
        return self

    async def __aexit__(self, *_: Any) -> None:
        for entry in self.entries.values():
            if entry.job is not None:
                entry.job.cancel()

    async def answer(self, operation: Operation, task_id: str) -> Answer:
        """What /status, /get or /cancel answer for a task this worker holds."""
        entry = self.entries.get(task_id)
        if entry is None:
            return _error(f"No such task: it never existed, or its answer was dropped {self.keep_s:g} s after it ended "
                          "(SWAPAROONY_TASK_RESULT_S).", "task_not_found", 404)
        if operation == "cancel":
            self.cancel(task_id)
            entry.fetched = True  # the client is done with it
            with contextlib.suppress(TimeoutError):  # a cancelled task ends at its next await: answer once it has
                async with asyncio.timeout(CANCEL_WAIT_S):
                    await entry.ended.wait()
        if operation == "get":
            if entry.answer is None:
                return _error("The task is still running: see its status.", "task_running", 400)
            entry.fetched = True
            return entry.answer
        shown = (await self.get_status(task_id)).to_json() | {"progress": entry.progress.described()}
        return _json(shown | ({"reason": entry.reason} if entry.reason else {}))

    def owns(self, task_id: str) -> bool:
        return task_id.startswith(self.owner + "-")

    async def new_entry(self, name: str, input: Request | None) -> str:
        client = CLIENT_KEY.get()
        held = [entry for entry in self.entries.values() if not entry.fetched]
        if len(held) >= self.max_tasks:
            raise TaskFull(f"This worker holds {self.max_tasks} tasks (SWAPAROONY_MAX_TASKS), running or with answers "
                           "not yet fetched; retry once some are done.")
        if sum(entry.client == client for entry in held) >= self.per_client:
            raise TaskFull(f"You hold {self.per_client} tasks on this worker (a quarter of SWAPAROONY_MAX_TASKS), "
                           "running or with answers not yet fetched; fetch them (GET .../get) or retry once some are "
                           "done.")
        fetched = [task_id for task_id, entry in self.entries.items() if entry.fetched]
        for task_id in fetched[:len(self.entries) + 1 - KEPT_PER_TASK * self.max_tasks]:
            del self.entries[task_id]  # the oldest answers already taken make room: memory stays bounded
        task_id = f"{self.owner}-{uuid.uuid4().hex}"
        self.entries[task_id] = Entry(name, _now(), client)
        return task_id

    def start(self, task_id: str, run: Run, request: Request) -> None:
        """Run the task's request now, apart from the submit call that made it (which answers at once)."""
        entry = self.entries[task_id]
        if entry.status is not ResultStatus.IN_PROGRESS:
            return  # cancelled before it started
        context = contextvars.copy_context()
        context.run(PROGRESS.set, entry.progress)
        entry.job = asyncio.get_running_loop().create_task(self._run(entry, run, request), context=context)
        asyncio.get_running_loop().create_task(self._finish(task_id, entry.job))

    async def _run(self, entry: Entry, run: Run, request: Request) -> Response:
        async with self.running:  # queued until one of the running slots is free
            entry.executed_at = _now()
            return await run(entry.name, request)

    async def _finish(self, task_id: str, job: asyncio.Task[Response]) -> None:
        """Wait for the task within its deadline and keep its answer; whatever happens, it ends and is dropped later."""
        entry = self.entries[task_id]
        try:
            async with asyncio.timeout(self.deadline_s):
                response = await job
        except TimeoutError:
            reason = (f"The task ran past its {self.deadline_s:g}-second deadline (SWAPAROONY_TASK_DEADLINE_S) and was "
                      "stopped.")
            self._end(entry, ResultStatus.FAILED, _error(reason, "task_deadline", 504), reason)
        except asyncio.CancelledError:
            self._end(entry, ResultStatus.CANCELED, _error("The task was cancelled.", "task_cancelled", 409))
        except Exception:  # BentoML answers every API error itself; this is a bug, logged with its trace
            logger.exception("task %s failed", task_id)
        else:
            body = bytes(getattr(response, "body", b""))
            failed = response.status_code >= 400
            self._end(entry, ResultStatus.FAILED if failed else ResultStatus.COMPLETED,
                      Answer(response.status_code, body, list(response.raw_headers)), _said(body) if failed else None)
            if response.background is not None:
                with contextlib.suppress(Exception):
                    await response.background()  # closes the request's files
        finally:
            if not entry.ended.is_set():
                self._end(entry, ResultStatus.FAILED, _error("The task failed; the server log says why.", "internal",
                                                             500))
            entry.job = None
            logger.info("task %s (%s) %s", task_id, entry.name, entry.status.value)
            asyncio.get_running_loop().call_later(self.keep_s, self.entries.pop, task_id, None)

    def _end(self, entry: Entry, status: ResultStatus, answer: Answer, reason: str | None = None) -> None:
        entry.status, entry.answer, entry.reason, entry.completed_at = status, answer, reason, _now()
        entry.ended.set()
        if status is ResultStatus.COMPLETED:
            entry.progress.stage = "done"

    def cancel(self, task_id: str) -> Entry:
        """Stop a running task (its model work stops at the next chunk); a finished one stays as it is."""
        entry = self.entries[task_id]
        if entry.status is ResultStatus.IN_PROGRESS:
            if entry.job is not None:
                entry.job.cancel()
            else:
                self._end(entry, ResultStatus.CANCELED, _error("The task was cancelled.", "task_cancelled", 409))
                asyncio.get_running_loop().call_later(self.keep_s, self.entries.pop, task_id, None)
        return entry

    async def get_status(self, task_id: str) -> ResultRow:
        entry = self.entries[task_id]
        return ResultRow(task_id, entry.name, entry.status, entry.created_at, entry.executed_at)

    async def get(self, task_id: str) -> CompletedResultRow[Request | None, Response]:
        entry = self.entries[task_id]
        if entry.answer is None:
            raise RuntimeError(f"Task {task_id} is not completed")
        return CompletedResultRow(task_id, entry.name, entry.status, entry.created_at, entry.executed_at,
                                  None, entry.answer.response(), entry.completed_at)  # the upload is not kept

    async def set_result(self, task_id: str, result: Response, status: ResultStatus) -> None:
        raise NotImplementedError("tasks end through MemoryTaskStore.start")

    async def set_status(self, task_id: str, status: ResultStatus) -> None:
        if status is ResultStatus.CANCELED:
            self.cancel(task_id)


def _said(body: bytes) -> str | None:
    """The sentence an error answer gives (every API error is {"error", "code"}), for the failed task's status."""
    try:
        said = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None
    return said if isinstance(said, str) else None


def _error(message: str, code: str, status: int) -> Answer:
    return _json({"error": message, "code": code}, status)


def _json(content: dict[str, Any], status: int = 200) -> Answer:
    response = JSONResponse(content, status_code=status)
    return Answer(status, bytes(response.body), list(response.raw_headers))


def _now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.timezone.utc)
