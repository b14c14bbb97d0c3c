"""SMTP traffic for the capture parity test: python3's smtplib against a
minimal scripted server (ours does not exist yet), plus a hand-typed
dialogue with the verbs a student tries. Usage: smtp_traffic.py PORT"""
import smtplib
import socket
import sys
import threading

PORT = int(sys.argv[1])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", PORT))
srv.listen(5)


def session(c):
    f = c.makefile("rb")
    c.sendall(b"220 mail.b.lab ESMTP parity\r\n")
    data = False
    for line in f:
        if data:
            if line == b".\r\n":
                data = False
                c.sendall(b"250 2.0.0 queued\r\n")
            continue
        verb = line.split(b" ")[0].strip().upper()
        if verb in (b"EHLO",):
            c.sendall(b"250-mail.b.lab\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n")
        elif verb == b"DATA":
            data = True
            c.sendall(b"354 end with <CRLF>.<CRLF>\r\n")
        elif verb == b"QUIT":
            c.sendall(b"221 2.0.0 bye\r\n")
            break
        elif verb == b"VRFY":
            c.sendall(b"252 cannot verify\r\n")
        else:
            c.sendall(b"250 2.0.0 ok\r\n")
    c.close()


def serve():
    for _ in range(2):
        c, _ = srv.accept()
        session(c)


t = threading.Thread(target=serve)
t.start()
with smtplib.SMTP("127.0.0.1", PORT, timeout=5) as s:
    s.ehlo("ws.a.lab")
    s.sendmail("alice@a.lab", ["bob@b.lab", "carol@b.lab"],
               "Subject: parity\r\nFrom: alice@a.lab\r\n\r\n.a line with a leading dot\r\nbye\r\n")
# By hand, as in the lab's raw TCP console.
c = socket.create_connection(("127.0.0.1", PORT))
f = c.makefile("rb")
f.readline()
for cmd in [b"HELO ws.a.lab", b"NOOP", b"VRFY bob", b"RSET", b"MAIL FROM:<alice@a.lab>",
            b"RCPT TO:<bob@b.lab>", b"QUIT"]:
    c.sendall(cmd + b"\r\n")
    f.readline()
c.close()
t.join()
print("ok")
