"""python3's poplib against applab's POP3 server.

pop3_client.py HOST PORT MODE
  MODE delete: read every message, DELE the first, RSET, DELE it again, QUIT
  MODE keep:   read every message (download-and-keep), QUIT
  MODE empty:  also DELE every message, then LIST and UIDL (an empty
               listing), RSET, QUIT
Prints one JSON line with what was seen.
"""
import json
import poplib
import sys

host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
p = poplib.POP3(host, port, timeout=10)
out = {"welcome": p.getwelcome().decode()}
out["capa"] = sorted(p.capa().keys())
p.user("bob")
out["pass"] = p.pass_("bob-pw").decode()
count, size = p.stat()
out["stat"] = [count, size]
out["list"] = [l.decode() for l in p.list()[1]]
out["uidl"] = [l.decode().split()[1] for l in p.uidl()[1]]
out["messages"] = []
for i in range(1, count + 1):
    _, lines, octets = p.retr(i)
    out["messages"].append({"octets": octets, "text": "\n".join(l.decode() for l in lines)})
_, top_lines, _ = p.top(1, 0)
out["top_lines"] = [l.decode() for l in top_lines]
if mode == "delete":
    p.dele(1)
    out["stat_after_dele"] = list(p.stat())
    p.rset()
    out["stat_after_rset"] = list(p.stat())
    p.dele(1)
if mode == "empty":
    for i in range(1, count + 1):
        p.dele(i)
    out["list_when_empty"] = [l.decode() for l in p.list()[1]]
    out["uidl_when_empty"] = [l.decode() for l in p.uidl()[1]]
    p.rset()
out["quit"] = p.quit().decode()
print(json.dumps(out))
