#!/usr/bin/env python3
"""A WebSocket echo server keel did not write, for keel::ws_client's tests.

Usage: ws_echo_server.py PORT
Echoes every message (text as text, binary as binary) and prints one line
"listening PORT" once it accepts connections. python3-websockets answers
pings itself; the tests silence it with SIGSTOP to play a dead peer.
"""
import asyncio
import sys

import websockets


async def echo(ws, path=None):
    try:
        async for message in ws:
            await ws.send(message)
    except websockets.ConnectionClosed:
        pass


async def main(port):
    # ping_interval=None: this server never pings, so only the client's
    # heartbeat is under test.
    async with websockets.serve(echo, "127.0.0.1", port, ping_interval=None):
        print(f"listening {port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
