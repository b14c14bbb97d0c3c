"""Real SMTP clients that are not ours, against applab's mail server.

smtp_client.py HOST PORT MODE   (MODE: relay-denied | plain | login)
Prints one JSON line describing what happened.
"""
import json
import smtplib
import sys
from email.message import EmailMessage

host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
msg = EmailMessage()
msg["From"] = "alice@a.lab"
msg["To"] = "bob@b.lab"
msg["Subject"] = f"smtplib {mode}"
msg.set_content(f"sent by python smtplib, {mode}\n.a line that starts with a dot\n")
out = {}
with smtplib.SMTP(host, port, timeout=10) as s:
    code, _ = s.ehlo("python.a.lab")
    out["ehlo"] = code
    out["features"] = sorted(s.esmtp_features.keys())
    if mode == "relay-denied":
        try:
            s.send_message(msg)
            out["result"] = "accepted"
        except smtplib.SMTPRecipientsRefused as e:
            code, text = e.recipients["bob@b.lab"]
            out["result"] = "refused"
            out["code"] = code
            out["text"] = text.decode()
    else:
        if mode == "login":
            s.user, s.password = "alice", "alice-pw"
            code, _ = s.auth("LOGIN", s.auth_login)
        else:
            s.user, s.password = "alice@a.lab", "alice-pw"
            code, _ = s.auth("PLAIN", s.auth_plain)
        out["auth"] = code
        refused = s.send_message(msg)
        out["result"] = "accepted" if not refused else "refused"
print(json.dumps(out))
