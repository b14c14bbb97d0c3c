"""A minimal caching forward proxy for the capture test's model workflow:
the first request for an object goes to the origin; the second is
revalidated with If-Modified-Since, and the origin's 304 lets the proxy
answer from its copy. Usage: caching_proxy.py PROXY_PORT ORIGIN_PORT PATH
(it fetches PATH twice through itself, as a browser configured for it)."""
import http.client
import socket
import sys
import threading

PROXY_PORT, ORIGIN_PORT, PATH = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
cache = {}
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", PROXY_PORT))
srv.listen(5)


def serve_one():
    c, _ = srv.accept()
    f = c.makefile("rb")
    line = f.readline().decode()
    while f.readline() not in (b"\r\n", b""):
        pass
    method, target, _ = line.split(" ")
    path = "/" + target.split("/", 3)[3]
    up = http.client.HTTPConnection("127.0.0.1", ORIGIN_PORT, timeout=5)
    headers = {"Via": "1.1 testproxy"}
    if path in cache:
        headers["If-Modified-Since"] = cache[path][0]
    up.request("GET", path, headers=headers)
    r = up.getresponse()
    body = r.read()
    if r.status == 200:
        cache[path] = (r.getheader("Last-Modified"), body)
    else:
        body = cache[path][1]
    up.close()
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    c.close()


for _ in range(2):
    t = threading.Thread(target=serve_one)
    t.start()
    s = socket.create_connection(("127.0.0.1", PROXY_PORT))
    s.sendall(("GET http://127.0.0.1:%d%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n"
               % (ORIGIN_PORT, PATH, ORIGIN_PORT)).encode())
    while s.recv(65536):
        pass
    s.close()
    t.join()
