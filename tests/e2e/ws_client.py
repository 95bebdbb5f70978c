"""A minimal RFC 6455 WebSocket client over a raw socket, for tests that need exact control of
frames (sizes, timing) and for the soak script's 200 signaling clients. The suite has no Python
WebSocket library; tests/node drives the real KVS WebRTC SDK."""

from __future__ import annotations

import base64
import os
import socket
import struct
import urllib.parse


class WebSocket:
    """A minimal RFC 6455 client over a raw socket (the suite has no WebSocket library in
    Python; tests/node has the real SDK): handshake, masked text frames, read frames."""

    def __init__(self, url: str, timeout: float = 10.0):
        u = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        target = u.path or "/"
        if u.query:
            target += "?" + u.query
        self.sock.sendall((f"GET {target} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            b = self.sock.recv(4096)
            if not b:
                break
            head += b
        self.head, _, self.buf = head.partition(b"\r\n\r\n")
        self.status = int(self.head.split(b" ", 2)[1]) if self.head else 0
        self.body = self.buf if self.status != 101 else b""

    def error_type(self) -> str | None:
        for line in self.head.split(b"\r\n"):
            if line.lower().startswith(b"x-amzn-errortype:"):
                return line.split(b":", 1)[1].strip().decode().split(":")[0]
        return None

    def send_frame(self, payload: bytes, opcode: int = 1) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            hdr = struct.pack(">BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            hdr = struct.pack(">BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            hdr = struct.pack(">BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(hdr + mask + masked)

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            b = self.sock.recv(65536)
            if not b:
                raise EOFError("connection closed")
            self.buf += b
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self) -> tuple[int, bytes]:
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack(">H", self._read(2))
        elif n == 127:
            (n,) = struct.unpack(">Q", self._read(8))
        return b0 & 0x0F, self._read(n)

    def wait_close(self, timeout: float = 5.0) -> int | str:
        """Reads until a close frame (returns its code, 1005 if it has none), EOF or a reset
        ("eof"), or `timeout` seconds without either ("open")."""
        self.sock.settimeout(timeout)
        try:
            while True:
                op, data = self.read_frame()
                if op == 8:
                    return struct.unpack(">H", data[:2])[0] if len(data) >= 2 else 1005
        except socket.timeout:
            return "open"
        except (EOFError, OSError):
            return "eof"

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
