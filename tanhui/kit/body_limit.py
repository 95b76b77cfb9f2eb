"""A ceiling on request bodies, applied before anything holds one in memory.

Handlers read a body whole (`await request.body()`, form parsing), and the partner endpoints must
read it before they can check its signature. Without a ceiling, anyone could send a body of a few
gigabytes to a public endpoint and the process would buffer all of it. The largest legitimate
bodies are a 1,000-record batch (about 5 MB at the evidence limit) and a 10 MB project document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tanhui.kit.errors import TanhuiError
from tanhui.kit.http import problem


class RequestTooLarge(TanhuiError):
    status_code = 413
    code = "request_too_large"


def _problem(_scope: Any, exc: RequestTooLarge) -> Any:
    return problem(exc.status_code, exc.code, exc.message, field=None)


class BodyLimit:
    """ASGI middleware: a declared Content-Length over `max_bytes` is answered 413 before the body
    is read, by `respond(scope, error)` (a problem document unless the app says otherwise: its
    pages answer with a page); a body without one (chunked) is counted as it arrives, and the read
    that passes the ceiling raises `RequestTooLarge`, which stops the handler; the answer it then
    gives is replaced by the same 413."""

    def __init__(
        self,
        app: Any,
        max_bytes: int,
        respond: Callable[[Any, RequestTooLarge], Any] = _problem,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.respond = respond

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answered = False

        async def refuse() -> None:
            nonlocal answered
            if not answered:
                answered = True
                await self.respond(scope, RequestTooLarge(self._message()))(scope, receive, send)

        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await refuse()
            return
        received = 0
        overflowed = False

        async def counted() -> Any:
            nonlocal received, overflowed
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    overflowed = True
                    raise RequestTooLarge(self._message())
            return message

        async def guarded(message: Any) -> None:
            # Whatever the app made of the error (FastAPI turns any error while it reads a body
            # for a model into 400 "There was an error parsing the body"), the answer is ours.
            if not overflowed:
                await send(message)
            elif message["type"] == "http.response.start":
                await refuse()

        try:
            await self.app(scope, counted, guarded)
        except RequestTooLarge:  # not caught inside the app: answered here, never as a 500
            await refuse()

    def _message(self) -> str:
        return f"the request body is larger than {self.max_bytes // 2**20} MB"


def _content_length(scope: Any) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before we are called
    return None
