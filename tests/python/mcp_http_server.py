"""A streamable-HTTP MCP server from the official `mcp` Python package, for
the MCP tests. It listens on a free loopback port, prints `PORT <n>` on
stdout once it accepts connections, and refuses requests whose
`X-Test-Token` header is not `$MCP_TEST_TOKEN` (when that variable is
set)."""

import os
import socket
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

server = MCPServer("netherbrain-test-python")


@server.tool()
def weather(city: str) -> str:
    """The weather in a city."""
    return f"It is sunny in {city}, 21 degrees."


@server.tool()
def multiply(a: int, b: int) -> int:
    """Multiplies two integers."""
    return a * b


def guarded(app, token):
    async def asgi(scope, receive, send):
        if scope["type"] == "http" and token:
            headers = dict(scope.get("headers") or [])
            if headers.get(b"x-test-token", b"").decode() != token:
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": b"unauthorized"})
                return
        await app(scope, receive, send)
    return asgi


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = guarded(server.streamable_http_app(), os.environ.get("MCP_TEST_TOKEN"))
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)

    original_startup = uv.startup

    async def startup(sockets=None):
        await original_startup(sockets=sockets)
        print(f"PORT {port}", flush=True)

    uv.startup = startup
    uv.run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
