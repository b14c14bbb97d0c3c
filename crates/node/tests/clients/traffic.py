"""Traffic for the capture parity test: HTTP exchanges of several shapes
against the origin, and DNS queries answered by a tiny responder.
Usage: traffic.py HTTP_PORT DNS_PORT"""
import http.client
import socket
import struct
import sys
import threading

HTTP_PORT, DNS_PORT = int(sys.argv[1]), int(sys.argv[2])

# A DNS responder answering every A query with 10.0.0.<id % 250>.
srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
srv.bind(("127.0.0.1", DNS_PORT))


def answer():
    for _ in range(2):
        q, peer = srv.recvfrom(512)
        qid = struct.unpack("!H", q[:2])[0]
        question = q[12:]
        header = struct.pack("!HHHHHH", qid, 0x8580, 1, 1, 0, 0)
        rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([10, 0, 0, qid % 250])
        srv.sendto(header + question + rr, peer)


t = threading.Thread(target=answer)
t.start()


def query(name, qid):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    s.sendto(struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1),
             ("127.0.0.1", DNS_PORT))
    s.recvfrom(512)
    s.close()


query("www.alpha.lab", 17)
query("mail.beta.lab", 18)
t.join()

# HTTP: a persistent connection with several methods, then others.
c = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=5)
for method, path, body, headers in [
    ("GET", "/index.html", None, {}),
    ("HEAD", "/index.html", None, {}),
    ("POST", "/search", "q=parity", {"Content-Type": "application/x-www-form-urlencoded"}),
    ("GET", "/missing", None, {}),
    ("PUT", "/uploads/p.txt", iter([b"chunk one ", b"chunk two"]), {"Transfer-Encoding": "chunked"}),
    ("DELETE", "/uploads/p.txt", None, {}),
    ("GET", "/index.html", None, {"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}),
]:
    c.request(method, path, body=body, headers=headers, encode_chunked=isinstance(body, type(iter([]))))
    c.getresponse().read()
c.close()
# HTTP/1.0, one connection per request.
for path in ["/", "/img/a.jpg"]:
    s = socket.create_connection(("127.0.0.1", HTTP_PORT))
    s.sendall(b"GET " + path.encode() + b" HTTP/1.0\r\nHost: parity\r\n\r\n")
    while s.recv(65536):
        pass
    s.close()
print("ok")
