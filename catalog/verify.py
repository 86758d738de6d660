"""Launch one MCP server over stdio, initialise a session, list its tools, stop it; bounded in time.

Runs in a worker or a management command, never in a web process: it starts a child
process and may wait up to `integrations.mcp_catalog.verify_timeout_seconds`.
"""
from __future__ import annotations

import asyncio
import logging
import tempfile
from dataclasses import dataclass, field
from typing import Any

from synthorg.config import MCPServerConfig

logger = logging.getLogger(__name__)

_ERROR_LIMIT = 500


@dataclass
class VerifyResult:
    ok: bool
    tools: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    server_name: str = ""
    server_version: str = ""


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


async def _list_tools(server: MCPServerConfig, errlog: Any) -> VerifyResult:
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=server.command, args=list(server.args), env=dict(server.env) or None)
    async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
        init = await session.initialize()
        listed = await session.list_tools()
    tools = [{"name": t.name, "description": (t.description or "")[:300]} for t in listed.tools]
    return VerifyResult(ok=True, tools=tools, server_name=init.serverInfo.name,
                        server_version=init.serverInfo.version)


def _failure(message: str, errlog: Any, secrets: list[str]) -> VerifyResult:
    errlog.seek(0)
    stderr_lines = [line.strip() for line in errlog.read().splitlines() if line.strip()]
    if stderr_lines:
        # The server's own last words usually name the problem (bad path, missing token).
        message = f"{message}; the server said: {stderr_lines[-1]}"
    return VerifyResult(ok=False, error=_scrub(message, secrets)[:_ERROR_LIMIT])


def verify_server(server: MCPServerConfig, *, timeout: float, secrets: list[str] | None = None) -> VerifyResult:
    """Never raises for a server problem: the result says what went wrong, without secrets."""
    secrets = secrets or []
    if server.transport != "stdio":
        return VerifyResult(ok=False, error=f"only stdio servers can be verified (this one is {server.transport})")
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as errlog:
        try:
            return asyncio.run(asyncio.wait_for(_list_tools(server, errlog), timeout))
        except TimeoutError:
            return _failure(f"no answer within {timeout:g} seconds", errlog, secrets)
        except FileNotFoundError:
            return _failure(f"command not found: {server.command}", errlog, secrets)
        except PermissionError:
            return _failure(f"command not executable: {server.command}", errlog, secrets)
        except Exception as exc:
            # The MCP SDK raises its own McpError, anyio errors and exception groups here.
            logger.info("verify of %s failed", server.name, exc_info=True)
            return _failure(_describe(exc), errlog, secrets)


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc) or type(exc).__name__
    return f"the server failed: {text}"
