"""Traffic for the loader tests, run inside a pod's network namespace.

serve PORT...              echo servers; prints "listening" once bound
connect IP PORT TIMEOUT    one connection and round trip: prints ok, timeout or refused
stream IP PORT             one connection exchanging a line every 20 ms; on each stdin
                           line "ping" prints {"rounds", "error", "alive"}; "quit" ends
probe IP PORT              new connections back to back from 4 threads (0.1 s timeout
                           each); on each stdin line "ping" prints {"ok", "failed"};
                           "quit" ends
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time


def _echo(conn: socket.socket) -> None:
    with conn:
        f = conn.makefile("rwb", buffering=0)
        for line in f:
            f.write(line)


def serve(ports: list[int]) -> None:
    socks = []
    for port in ports:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(64)
        socks.append(s)

    def accept(s: socket.socket) -> None:
        while True:
            conn, _ = s.accept()
            threading.Thread(target=_echo, args=(conn,), daemon=True).start()

    for s in socks:
        threading.Thread(target=accept, args=(s,), daemon=True).start()
    print("listening", flush=True)
    threading.Event().wait()


def connect(ip: str, port: int, timeout: float) -> str:
    try:
        with socket.create_connection((ip, port), timeout=timeout) as s:
            s.sendall(b"hello\n")
            return "ok" if s.makefile("rb").readline() == b"hello\n" else "bad echo"
    except TimeoutError:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return f"error {e}"


def stream(ip: str, port: int) -> None:
    state = {"rounds": 0, "error": None}
    sock = socket.create_connection((ip, port), timeout=2)
    f = sock.makefile("rwb", buffering=0)
    stop = threading.Event()

    def run() -> None:
        n = 0
        while not stop.is_set():
            try:
                f.write(f"{n}\n".encode())
                if f.readline() != f"{n}\n".encode():
                    raise OSError("bad echo")
            except OSError as e:
                state["error"] = f"round {n}: {e!r}"
                return
            n += 1
            state["rounds"] = n
            time.sleep(0.02)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    while state["rounds"] == 0 and state["error"] is None:
        time.sleep(0.01)
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        print(json.dumps(state | {"alive": t.is_alive()}), flush=True)
    stop.set()
    sock.close()


def probe(ip: str, port: int) -> None:
    counts = {"ok": 0, "failed": 0}
    stop = threading.Event()

    lock = threading.Lock()

    def run() -> None:
        while not stop.is_set():
            result = connect(ip, port, 0.1)
            with lock:
                counts["ok" if result == "ok" else "failed"] += 1

    for _ in range(4):
        threading.Thread(target=run, daemon=True).start()
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        with lock:
            print(json.dumps(counts), flush=True)
    stop.set()


def main() -> None:
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "serve":
        serve([int(p) for p in args])
    elif cmd == "connect":
        print(connect(args[0], int(args[1]), float(args[2])), flush=True)
    elif cmd == "stream":
        stream(args[0], int(args[1]))
    elif cmd == "probe":
        probe(args[0], int(args[1]))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
