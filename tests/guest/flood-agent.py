#!/usr/bin/env python3
"""A hostile guest agent for the host's reply limit: answers every request with FLOOD_BYTES of 'x' and no newline.

Listens on TCP 127.0.0.1 (a free port, printed first). A connection that closes without sending anything (a
reachability probe) gets nothing. After each flood it prints "sent-all N" or "dropped-after N" (how much it wrote
before the host dropped the connection).
"""
import socket
import sys

flood = int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 30
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(8)
print(listener.getsockname()[1], flush=True)
chunk = b"x" * (1 << 20)
while True:
    conn, _ = listener.accept()
    with conn:
        if not conn.recv(65536):
            continue
        sent = 0
        try:
            while sent < flood:
                conn.sendall(chunk)
                sent += len(chunk)
            print("sent-all %d" % sent, flush=True)
        except OSError:
            print("dropped-after %d" % sent, flush=True)
