#!/usr/bin/python3
"""A byte pipe between a TCP port on 127.0.0.1 and a Unix socket, for Dino.

Dino 0.4 has no setting for the server's host and port: it connects to
localhost:5222 and insists on a trusted certificate.  gui.py runs it in
its own network and mount namespaces (unshare), where 5222 is free and
the CA bundle can be swapped for one that holds the test's certificate;
this program carries the bytes across the namespace boundary:

  bridge.py unix-to-tcp SOCKET PORT   outside: SOCKET -> 127.0.0.1:PORT
  bridge.py tcp-to-unix PORT SOCKET   inside:  127.0.0.1:PORT -> SOCKET

It runs until killed; each connection is two threads copying bytes.
"""

import os
import socket
import sys
import threading


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def serve(listener, connect):
    while True:
        conn, _ = listener.accept()
        try:
            other = connect()
        except OSError:
            conn.close()
            continue
        threading.Thread(target=pump, args=(conn, other), daemon=True).start()
        threading.Thread(target=pump, args=(other, conn), daemon=True).start()


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("unix-to-tcp", "tcp-to-unix"):
        sys.exit(__doc__)
    mode = sys.argv[1]
    if mode == "unix-to-tcp":
        path, port = sys.argv[2], int(sys.argv[3])
        if os.path.exists(path):
            os.unlink(path)
        lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lst.bind(path)
        lst.listen(16)
        serve(lst, lambda: socket.create_connection(("127.0.0.1", port)))
    else:
        port, path = int(sys.argv[2]), sys.argv[3]
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind(("127.0.0.1", port))
        lst.listen(16)

        def connect():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            return s
        serve(lst, connect)


if __name__ == "__main__":
    main()
