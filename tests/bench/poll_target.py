"""Health target of tests/bench/poller.sh: one asyncio process answering GET on PORT of every address
given, each answer after DELAY_MS, with a small default-format body (two dependencies). Keep-alive
HTTP/1.1, no pipelining (libcurl does not pipeline). Every second it writes to STATS_FILE one line:
`requests=N max_open=M cpu_s=S` (requests answered, most requests waiting at once since the start or
the last SIGUSR1, its own CPU time), so that the bench can show the target is not the bottleneck.
    poll_target.py PORT DELAY_MS STATS_FILE ADDRESS...
"""

import asyncio
import json
import os
import signal
import sys

BODY = json.dumps([{"name": "postgres", "healthy": True, "type": "database", "latencyMs": 3},
                   {"name": "cache", "healthy": True, "type": "cache", "latencyMs": 1}]).encode()
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
stats = {"requests": 0, "open": 0, "max_open": 0}


class Health(asyncio.Protocol):
    def __init__(self, loop, delay):
        self.loop, self.delay, self.buf, self.transport = loop, delay, b"", None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            _, self.buf = self.buf.split(b"\r\n\r\n", 1)
            stats["open"] += 1
            stats["max_open"] = max(stats["max_open"], stats["open"])
            self.loop.call_later(self.delay, self.answer)

    def answer(self):
        stats["open"] -= 1
        stats["requests"] += 1
        if not self.transport.is_closing():
            self.transport.write(RESPONSE)


async def report(path):
    while True:
        await asyncio.sleep(1)
        t = os.times()
        with open(path + ".tmp", "w") as f:
            f.write("requests=%d max_open=%d cpu_s=%.2f\n" % (stats["requests"], stats["max_open"], t.user + t.system))
        os.replace(path + ".tmp", path)


async def main(port, delay_ms, stats_path, addresses):
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: stats.update(max_open=stats["open"]))
    for a in addresses:
        await loop.create_server(lambda: Health(loop, delay_ms / 1000.0), a, port, backlog=1024, reuse_address=True)
    print("ready", flush=True)
    await report(stats_path)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4:]))
