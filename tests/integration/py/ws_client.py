#!/usr/bin/env python3
"""ws_client.py - drives herald's WebSocket endpoints with the `websockets` library (10.4 API),
for tests/integration/14-python-websockets.test.mjs. Prints one JSON object per line, flushed.

  ws_client.py sub URI COUNT deflate|none
      connects, prints {"ready": true, "extensions": [...]}, then one line per message
      ({"type": "text", "data": ...} or {"type": "binary", "hex": ...}) until COUNT arrived,
      closes normally and prints {"closed": CODE}.
  ws_client.py echo URI deflate|none
      sends a text, a binary, a 100 KB text and a 100 KB binary message (and a burst of small
      ones), each waiting for its echo; prints {"case", "sent_type", "got_type", "sent_len",
      "got_len", "equal"} per case, then {"closed": CODE}.
"""
import asyncio
import json
import random
import sys

import websockets


def out(obj):
    print(json.dumps(obj), flush=True)


def compression_arg(name):
    return "deflate" if name == "deflate" else None


async def sub(uri, count, compression):
    async with websockets.connect(uri, compression=compression, max_size=2**24, ping_interval=None) as ws:
        out({"ready": True, "extensions": [e.name for e in ws.extensions]})
        for _ in range(count):
            m = await ws.recv()
            if isinstance(m, str):
                out({"type": "text", "data": m})
            else:
                out({"type": "binary", "hex": m.hex()})
        await ws.close()
        out({"closed": ws.close_code})


async def echo(uri, compression):
    rnd = random.Random(1)
    cases = [
        ("text", "héllo wörld ✓ 𝄞"),
        ("binary", bytes(range(256))),
        ("text100k", "".join(rnd.choice("abcdefgh \n€") for _ in range(100 * 1024))),
        ("binary100k", rnd.randbytes(100 * 1024)),
        ("empty text", ""),
        ("empty binary", b""),
    ]
    async with websockets.connect(uri, compression=compression, max_size=2**24, ping_interval=None) as ws:
        out({"ready": True, "extensions": [e.name for e in ws.extensions]})
        for name, payload in cases:
            await ws.send(payload)
            got = await ws.recv()
            out({
                "case": name,
                "sent_type": type(payload).__name__,
                "got_type": type(got).__name__,
                "sent_len": len(payload),
                "got_len": len(got),
                "equal": got == payload,
            })
        # a burst without waiting: echoes come back in order
        burst = [f"burst {i}" for i in range(50)]
        for m in burst:
            await ws.send(m)
        got = [await ws.recv() for _ in burst]
        out({"case": "burst", "sent_type": "str", "got_type": "str", "sent_len": len(burst),
             "got_len": len(got), "equal": got == burst})
        await ws.close()
        out({"closed": ws.close_code})


def main():
    mode, uri = sys.argv[1], sys.argv[2]
    if mode == "sub":
        asyncio.run(sub(uri, int(sys.argv[3]), compression_arg(sys.argv[4])))
    elif mode == "echo":
        asyncio.run(echo(uri, compression_arg(sys.argv[3])))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
