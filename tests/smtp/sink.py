"""An SMTP server on loopback for Baton's e-mail alert tests, built on aiosmtpd.

Usage: sink.py DIR PORT USER PASSWORD

Writes DIR/ca.pem (a throwaway CA made with trustme, which signed the server's certificate for
127.0.0.1), requires STARTTLS and AUTH (USER/PASSWORD), stores each message it accepts as
DIR/mail-N.json, and prints READY once it accepts connections.
"""

import json
import os
import pathlib
import ssl
import sys
import threading

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

out = pathlib.Path(sys.argv[1])
port = int(sys.argv[2])
user, password = sys.argv[3].encode(), sys.argv[4].encode()

ca = trustme.CA()
cert = ca.issue_cert("127.0.0.1")
ca.cert_pem.write_to_path(str(out / "ca.pem"))
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
cert.configure_cert(context)
count = 0
lock = threading.Lock()


class Handler:
    async def handle_DATA(self, server, session, envelope):
        global count
        with lock:
            count += 1
            n = count
        record = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", "replace"),
            "authenticated": bool(session.authenticated),
            "tls": session.ssl is not None,
        }
        tmp = out / f".mail-{n}.json"
        tmp.write_text(json.dumps(record))
        os.replace(tmp, out / f"mail-{n}.json")
        return "250 OK stored"


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == user and auth_data.password == password
    # handled=False: the server answers 535 itself.
    return AuthResult(success=ok, handled=False)


controller = Controller(
    Handler(),
    hostname="127.0.0.1",
    port=port,
    tls_context=context,
    require_starttls=True,
    authenticator=authenticate,
    auth_required=True,
)
controller.start()
print("READY", flush=True)
threading.Event().wait()
