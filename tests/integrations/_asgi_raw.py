"""The raw-request driver of the Starlette and FastAPI hostile-request tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.testclient import TestClient

from ._hostile import CountingBody


class AsgiRaw:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.client = TestClient(app, raise_server_exceptions=False)

    def send(self, method: str, path: str, body: bytes | CountingBody,
             headers: dict[str, bytes], *, declare_length: bool = True) -> tuple[int, bytes]:
        if isinstance(body, CountingBody):
            return asyncio.run(self._stream(method, path, body, headers, declare_length))
        response = self.client.request(method, path, content=body, headers=headers)
        return response.status_code, response.content

    async def _stream(self, method: str, path: str, body: CountingBody,
                      headers: dict[str, bytes], declare_length: bool) -> tuple[int, bytes]:
        # Starlette's TestClient reads a streamed body whole before the app sees any of it;
        # httpx's ASGI transport hands it over chunk by chunk, as a server does.
        async def chunks() -> AsyncIterator[bytes]:
            for chunk in body:
                yield chunk

        headers = dict(headers)
        if declare_length:
            headers["Content-Length"] = str(body.size).encode()
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.request(method, path, content=chunks(), headers=headers)
        return response.status_code, response.content
