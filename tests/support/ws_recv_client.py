#!/usr/bin/env python3
"""A WebSocket client keel did not write, for tests of what keel puts on the wire.

Usage: ws_recv_client.py URL
Connects, reads every message until the server closes, and prints one JSON line:
{"messages": [{"text": true, "data": "..."} | {"text": false, "hex": "..."}],
 "close_code": N, "close_reason": "...", "error": null | "..."}
python3-websockets validates what it receives as RFC 6455 requires: a text
message or close reason that is not UTF-8 fails the connection with 1007, which
shows here as close_code 1007 and an error.
"""
import asyncio
import json
import sys

import websockets


async def main(url):
    out = {"messages": [], "close_code": None, "close_reason": None, "error": None}
    try:
        async with websockets.connect(url, ping_interval=None, open_timeout=10, close_timeout=10) as ws:
            try:
                while True:
                    msg = await asyncio.wait_for(ws.recv(), 10)
                    if isinstance(msg, str):
                        out["messages"].append({"text": True, "data": msg})
                    else:
                        out["messages"].append({"text": False, "hex": msg.hex()})
            except websockets.ConnectionClosed as e:
                if not isinstance(e, websockets.ConnectionClosedOK):
                    out["error"] = repr(e)
            out["close_code"] = ws.close_code
            out["close_reason"] = ws.close_reason
    except Exception as e:  # noqa: BLE001 - the test reads whatever went wrong
        out["error"] = repr(e)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
