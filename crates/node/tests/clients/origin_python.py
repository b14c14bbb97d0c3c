"""Drive applab's origin with clients that are not ours: python3's
http.client and raw sockets. Usage: origin_python.py HOST PORT

Every check asserts; the script exits non-zero on the first failure and
prints what it saw. The status codes of RFC 9110 that the origin promises
are each provoked here with the request a student would type.
"""
import http.client
import socket
import sys
import time

HOST, PORT = sys.argv[1], int(sys.argv[2])
checks = 0


def raw(data, read_all=True, timeout=5):
    """Send bytes on a fresh connection; return everything until close."""
    s = socket.create_connection((HOST, PORT), timeout=timeout)
    s.sendall(data)
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        out += chunk
        if not read_all:
            break
    s.close()
    return out


def status_of(resp):
    return int(resp.split(b" ", 2)[1])


def expect(name, data, status, contains=None):
    global checks
    out = raw(data)
    assert out.startswith(b"HTTP/1.1 "), f"{name}: no status line in {out[:200]!r}"
    got = status_of(out)
    assert got == status, f"{name}: expected {status}, got {got}: {out[:400]!r}"
    if contains:
        assert contains in out, f"{name}: {contains!r} not in {out[:400]!r}"
    checks += 1
    return out


# --- http.client: persistence, methods, chunked upload ---------------------
c = http.client.HTTPConnection(HOST, PORT, timeout=5)
c.request("GET", "/index.html")
r = c.getresponse()
body = r.read()
assert r.status == 200 and r.getheader("Content-Type").startswith("text/html"), r.status
assert int(r.getheader("Content-Length")) == len(body)
assert r.getheader("Date") and r.getheader("ETag") and r.getheader("Last-Modified")
first_sock = c.sock
c.request("HEAD", "/index.html")
r = c.getresponse()
assert r.status == 200 and r.read() == b"" and int(r.getheader("Content-Length")) == len(body)
etag, lm = r.getheader("ETag"), r.getheader("Last-Modified")
c.request("GET", "/index.html", headers={"If-None-Match": etag})
r = c.getresponse()
assert r.status == 304 and r.read() == b"" and r.getheader("Content-Length") is None
c.request("GET", "/index.html", headers={"If-Modified-Since": lm})
r = c.getresponse()
assert r.status == 304 and r.read() == b""
# A chunked upload (http.client frames the body itself).
c.request("PUT", "/uploads/py.txt", body=iter([b"hello ", b"chunked"]), encode_chunked=True,
          headers={"Transfer-Encoding": "chunked"})
r = c.getresponse()
r.read()
assert r.status in (201, 204), r.status
c.request("GET", "/uploads/py.txt")
r = c.getresponse()
assert r.read() == b"hello chunked"
c.request("POST", "/search", body="q=python+client&x=1",
          headers={"Content-Type": "application/x-www-form-urlencoded"})
r = c.getresponse()
page = r.read()
assert r.status == 200 and b"Results for &quot;python client&quot;" in page and b"entity body" in page
c.request("DELETE", "/uploads/py.txt")
r = c.getresponse()
r.read()
assert r.status == 204
assert c.sock is first_sock, "HTTP/1.1 must keep one persistent connection"
c.close()
checks += 1

# HTTP/1.0: closed after one exchange unless keep-alive is asked.
out = raw(b"GET /index.html HTTP/1.0\r\n\r\nGET /index.html HTTP/1.0\r\n\r\n")
assert out.count(b"HTTP/1.1 200") == 1 and b"Connection: close" in out, out[:300]
out = raw(b"GET /index.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
          b"GET /index.html HTTP/1.0\r\n\r\n")
assert out.count(b"HTTP/1.1 200") == 2 and b"Connection: keep-alive" in out, out[:300]
checks += 1

# Pipelining: three requests in one write, answered in order.
out = raw(b"GET /nope HTTP/1.1\r\nHost: o\r\n\r\n"
          b"GET /index.html HTTP/1.1\r\nHost: o\r\n\r\n"
          b"HEAD /home.index HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n")
codes = [int(out[i + 9:i + 12]) for i in range(len(out)) if out.startswith(b"HTTP/1.1 ", i)]
assert codes == [404, 200, 301], codes
checks += 1

# --- every status code, provoked by hand -----------------------------------
expect("200", b"GET / HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n", 200)
expect("201", b"PUT /uploads/new.txt HTTP/1.1\r\nHost: o\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi", 201,
       b"Location: /uploads/new.txt")
expect("204 put", b"PUT /uploads/new.txt HTTP/1.1\r\nHost: o\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbye", 204)
expect("204 delete", b"DELETE /uploads/new.txt HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n", 204)
expect("301", b"GET /home.index HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n", 301, b"Location: /index.html")
expect("301 folder", b"GET /img HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n", 301, b"Location: /img/")
expect("400 line", b"GET/index.html\r\n\r\n", 400)
expect("400 host", b"GET / HTTP/1.1\r\n\r\n", 400, b"Host")
# RFC 9112 §3.2: one Host, and it is host[:port].
expect("400 two hosts", b"GET / HTTP/1.1\r\nHost: o\r\nHost: o\r\n\r\n", 400, b"Host")
expect("400 bad host", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, b"Host")
expect("400 bad port", b"GET / HTTP/1.1\r\nHost: o:8o\r\n\r\n", 400, b"Host")
# RFC 9110 §2.5: an unknown 1.x minor is served as 1.1.
expect("200 1.5", b"GET / HTTP/1.5\r\nHost: o\r\nConnection: close\r\n\r\n", 200)
expect("400 header", b"GET / HTTP/1.1\r\nHost: o\r\nBad Header: x\r\n\r\n", 400)
expect("400 length", b"POST /search HTTP/1.1\r\nHost: o\r\nContent-Length: ten\r\n\r\n", 400)
expect("400 smuggle", b"POST /search HTTP/1.1\r\nHost: o\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)
expect("400 escape", b"GET /../../etc/passwd HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n", 400)
expect("404", b"GET /no-such-object HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n", 404)
expect("404 delete", b"DELETE /uploads/absent HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n", 404)
expect("405", b"DELETE /index.html HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n", 405, b"Allow: GET, HEAD, OPTIONS")
expect("405 post", b"POST /index.html HTTP/1.1\r\nHost: o\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 405, b"Allow:")
expect("411", b"POST /search HTTP/1.1\r\nHost: o\r\n\r\n", 411)
expect("413", b"PUT /uploads/big HTTP/1.1\r\nHost: o\r\nContent-Length: 99999999\r\n\r\n", 413)
expect("414", b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: o\r\n\r\n", 414)
expect("431 size", b"GET / HTTP/1.1\r\nHost: o\r\nX: " + b"b" * 40000 + b"\r\n\r\n", 431)
expect("431 count", b"GET / HTTP/1.1\r\nHost: o\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n", 431)
expect("501", b"BREW /pot HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n", 501)
expect("505", b"GET / HTTP/2.0\r\nHost: o\r\n\r\n", 505)
expect("304", b"GET /index.html HTTP/1.1\r\nHost: o\r\nIf-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\nConnection: close\r\n\r\n", 304)
# Expect: 100-continue: the interim answer comes before the body is sent.
s = socket.create_connection((HOST, PORT), timeout=5)
s.sendall(b"PUT /uploads/c.txt HTTP/1.1\r\nHost: o\r\nExpect: 100-continue\r\n"
          b"Content-Length: 2\r\nConnection: close\r\n\r\n")
interim = s.recv(4096)
assert interim == b"HTTP/1.1 100 Continue\r\n\r\n", interim
s.sendall(b"ok")
final = s.recv(4096)
assert final.startswith(b"HTTP/1.1 201"), final
s.close()
checks += 1

# Slow header (slow-loris): 408 and closed, after the header timeout.
s = socket.create_connection((HOST, PORT), timeout=10)
s.sendall(b"GET / HTTP/1.1\r\n")
t0 = time.time()
out = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    out += chunk
assert out.startswith(b"HTTP/1.1 408"), out[:200]
assert time.time() - t0 < 8, "the header timeout must bound a slow client"
checks += 1

# Garbage never kills the server: binary noise, then a normal request.
raw(bytes(range(256)) * 64, timeout=2)
expect("alive", b"GET / HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n", 200)
print(f"ok: {checks} checks")
