#!/usr/bin/env python3
"""A minimal application-server webhook receiver for task-inbox (see docs/webhooks.md).

    TI_HOOK_KIND=standard TI_HOOK_KEY=whsec_... python3 examples/receiver.py
    TI_HOOK_KIND=head TI_HOOK_KEY=... TI_HOOK_HEADER=ti-key python3 examples/receiver.py

Environment:
    TI_HOOK_KIND    'head' or 'standard': the schema's hook_auth.kind (default standard)
    TI_HOOK_KEY     the webhook key printed by `task-inbox webhook_key SCHEMA_NAME`; during a key
                    rotation, several keys separated by spaces (any of them is accepted)
    TI_HOOK_HEADER  'head' only: the header carrying the key, hook_auth.val (default ti-key)
    PORT            default 5001; HOST default 127.0.0.1

It listens on POST /api/v1/tihook, checks the key or the signature (401 when wrong), drops
deliveries whose webhook-id it has already seen, prints the event and answers 204. In sync mode
the answer is the vote: anything but 2xx refuses the person's change.

Python 3.9+, standard library only.
"""
import base64
import binascii
import collections
import hashlib
import hmac
import json
import os
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import List, Optional

KIND = os.environ.get("TI_HOOK_KIND", "standard")
KEYS = os.environ.get("TI_HOOK_KEY", "").split()
HEADER = os.environ.get("TI_HOOK_HEADER", "ti-key")
PORT = int(os.environ.get("PORT", "5001"))
HOST = os.environ.get("HOST", "127.0.0.1")
PATH = "/api/v1/tihook"
MAX_BODY = 1024 * 1024
TOLERANCE_S = 5 * 60  # reject signatures older or newer than this (replays)


def standard_secret_bytes(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: base64 after the `whsec_` prefix."""
    if secret.startswith("whsec_"):
        secret = secret[len("whsec_"):]
    return base64.b64decode(secret, validate=True)


def sign_standard(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """`v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`."""
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify_standard(keys: List[bytes], msg_id: str, timestamp: str, signatures: str, body: bytes) -> bool:
    """True when the timestamp is recent and one of the space-separated signatures matches a key."""
    if not msg_id or not re.fullmatch(r"\d+", timestamp or ""):
        return False
    if abs(time.time() - int(timestamp)) > TOLERANCE_S:
        return False
    given = [s for s in signatures.split(" ") if s.startswith("v1,")]
    for key in keys:
        expected = sign_standard(key, msg_id, timestamp, body)
        if any(hmac.compare_digest(expected.encode(), g.encode()) for g in given):
            return True
    return False


def verify_head(keys: List[str], given: Optional[str]) -> bool:
    """True when the header holds one of the keys (compared in constant time)."""
    if not given:
        return False
    return any(hmac.compare_digest(given.encode(), k.encode()) for k in keys)


class Seen:
    """webhook-ids already handled (a retry or redelivery reuses the id). Keep these in your database."""

    def __init__(self, limit: int = 10_000) -> None:
        self.ids: "collections.OrderedDict[str, None]" = collections.OrderedDict()
        self.limit = limit
        self.lock = threading.Lock()

    def claim(self, msg_id: str) -> bool:
        """False when the id was seen before; otherwise remembers it."""
        with self.lock:
            if msg_id in self.ids:
                return False
            self.ids[msg_id] = None
            if len(self.ids) > self.limit:
                self.ids.popitem(last=False)
            return True

    def forget(self, msg_id: str) -> None:
        """Handling failed: let a retry with this id through."""
        with self.lock:
            self.ids.pop(msg_id, None)


seen = Seen()
if KIND not in ("head", "standard"):
    sys.exit(f"TI_HOOK_KIND must be 'head' or 'standard', not {KIND!r}.")
if not KEYS:
    sys.exit("Set TI_HOOK_KEY to the webhook key printed by `task-inbox webhook_key SCHEMA_NAME`.")
try:
    STANDARD_KEYS = [standard_secret_bytes(k) for k in KEYS] if KIND == "standard" else []
except (binascii.Error, ValueError):
    sys.exit("For kind 'standard', TI_HOOK_KEY must be the whsec_... secret printed by `task-inbox webhook_key`.")


def handle(event: dict, msg_id: str) -> None:
    """Act on the decision here (delete the account, publish the post, ...). Raising refuses it:
    in sync mode the person's change is then not made; in async mode task-inbox retries."""
    task, typ, prev = event["task"], event["type"], event["previous"]
    print(
        f"{event['event']} {typ['schema_name']}/{event['ttype']} task={task['id']} "
        f"{prev['state'] or '(none)'} -> {task['state'] or '(none)'}{' (resolved)' if task['resolved'] else ''} "
        f"history_id={event['history_id']} webhook-id={msg_id}",
        flush=True,
    )


class Handler(BaseHTTPRequestHandler):
    def answer(self, status: int, text: str = "") -> None:
        data = text.encode()
        self.send_response(status)
        if data:
            self.send_header("content-type", "text/plain; charset=utf-8")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.split("?")[0] != PATH:
            return self.answer(404, "not found\n")
        self.answer(405, "POST only\n")

    def do_POST(self) -> None:
        if self.path.split("?")[0] != PATH:
            return self.answer(404, "not found\n")
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            return self.answer(413, "too large\n")
        body = self.rfile.read(length)  # the exact bytes: re-serialised JSON would not match
        msg_id = self.headers.get("webhook-id", "")
        if KIND == "head":
            ok = verify_head(KEYS, self.headers.get(HEADER))
        else:
            ok = verify_standard(
                STANDARD_KEYS,
                msg_id,
                self.headers.get("webhook-timestamp", ""),
                self.headers.get("webhook-signature", ""),
                body,
            )
        if not ok:
            why = f"wrong or missing {HEADER} header" if KIND == "head" else "bad signature"
            print(f"rejected {msg_id or '(no webhook-id)'}: {why}", file=sys.stderr, flush=True)
            return self.answer(401, "wrong webhook key\n" if KIND == "head" else "bad signature\n")
        try:
            event = json.loads(body)
        except ValueError:
            return self.answer(400, "body is not JSON\n")
        if msg_id and not seen.claim(msg_id):
            print(f"duplicate {msg_id}: already handled, ignored", flush=True)
            return self.answer(204)
        try:
            handle(event, msg_id)
        except Exception as err:  # answer non-2xx: async retries, sync refuses the change
            seen.forget(msg_id)
            print(f"failed {msg_id}: {err!r}", file=sys.stderr, flush=True)
            return self.answer(500, "could not handle the event\n")
        self.answer(204)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass  # quiet: the events are printed above


def main() -> None:
    server = ThreadingHTTPServer((HOST, PORT), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"task-inbox receiver ({KIND}) listening on http://{HOST}:{PORT}{PATH}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
