#!/usr/bin/env python3
"""Host side of the network end-to-end test (see init.c for the guest side).

  tcp-serve ADDR PORT BYTES      serve BYTES of the pattern to one TCP client
  vsock-echo PATH                accept one client on the Unix socket PATH, read until EOF,
                                 then send it all back (reading first: an echo that writes
                                 while the peer is still writing deadlocks by flow control)
  vsock-connect PATH PORT BYTES  hybrid-vsock client: CONNECT PORT (retrying until the guest
                                 listens), send BYTES of the pattern, expect "thanks"
Pattern byte i: (i * 13 + 7) % 251. Prints one "RESULT ..." line.
"""
import os, socket, sys, time

def pattern(n):
    return bytes(((i * 13 + 7) % 251) for i in range(n))

def tcp_serve(addr, port, total):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    s.listen(1)
    s.settimeout(400)
    c, _ = s.accept()
    c.sendall(pattern(int(total)))
    c.close()
    print("RESULT tcp-serve ok", flush=True)

def vsock_echo(path):
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(1)
    s.settimeout(400)
    c, _ = s.accept()
    chunks = []
    while True:
        data = c.recv(65536)
        if not data:
            break
        chunks.append(data)
    received = b"".join(chunks)
    c.sendall(received)
    c.close()
    print("RESULT vsock-echo %s bytes=%d" % ("ok" if received == pattern(len(received)) else "mismatch", len(received)), flush=True)

def vsock_connect(path, port, total):
    deadline = time.time() + 400
    while time.time() < deadline:
        try:
            c = socket.socket(socket.AF_UNIX)
            c.connect(path)
            c.sendall(b"CONNECT %d\n" % int(port))
            line = b""
            while not line.endswith(b"\n"):
                chunk = c.recv(1)
                if not chunk:
                    break
                line += chunk
            if not line.startswith(b"OK "):
                c.close()
                time.sleep(0.5)
                continue
            c.sendall(pattern(int(total)))
            reply = b""
            while len(reply) < 6:
                chunk = c.recv(64)
                if not chunk:
                    break
                reply += chunk
            print("RESULT vsock-connect %s line=%s" % ("ok" if reply == b"thanks" else "bad-reply", line.strip().decode()), flush=True)
            return
        except OSError:
            time.sleep(0.5)
    print("RESULT vsock-connect timeout", flush=True)

if __name__ == "__main__":
    {"tcp-serve": tcp_serve, "vsock-echo": vsock_echo, "vsock-connect": vsock_connect}[sys.argv[1]](*sys.argv[2:])
