"""python3's imaplib against applab's IMAP server: the lab's workflow.

imap_client.py HOST PORT
Logs in as bob, reads INBOX, creates a folder, moves a message into it,
logs out, logs in again from a new connection and finds it there; fetches
headers only, searches, flags, expunges, appends. Prints one JSON object.
"""
import email
import imaplib
import json
import sys

host, port = sys.argv[1], int(sys.argv[2])
out = {}


def ok(r):
    typ, data = r
    assert typ == "OK", (typ, data)
    return data


m = imaplib.IMAP4(host, port, timeout=10)
out["capabilities"] = sorted(m.capabilities)
ok(m.login("bob", "bob-pw"))
out["list"] = [l.decode() for l in ok(m.list())]
data = ok(m.select("INBOX"))
out["exists"] = int(data[0])
out["uidvalidity"] = m.untagged_responses.get("UIDVALIDITY", [b"0"])[0].decode()
data = ok(m.fetch("1", "(UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE)"))
out["fetch_meta"] = data[0].decode() if isinstance(data[0], bytes) else data[0][0].decode()
# Only a component of the message: its header lines, without setting \Seen.
data = ok(m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])"))
out["headers_only"] = data[0][1].decode()
data = ok(m.fetch("1", "(FLAGS)"))
out["flags_after_peek"] = data[0].decode()
data = ok(m.fetch("2", "(BODY[TEXT])"))
out["text2"] = data[0][1].decode()
data = ok(m.fetch("2", "(FLAGS)"))
out["flags_after_body"] = data[0].decode()
data = ok(m.fetch("1:*", "(BODY.PEEK[]<0.10>)"))
out["partial"] = data[0][1].decode()
out["search_subject"] = ok(m.search(None, "SUBJECT", '"note 1"'))[0].decode()
out["search_unseen"] = ok(m.search(None, "UNSEEN"))[0].decode()
out["uid_search_all"] = ok(m.uid("SEARCH", None, "ALL"))[0].decode()
# A folder, and a message moved into it (COPY + \Deleted + EXPUNGE).
ok(m.create("Archive"))
uid1 = out["uid_search_all"].split()[0]
ok(m.uid("COPY", uid1, "Archive"))
ok(m.uid("STORE", uid1, "+FLAGS", "(\\Deleted)"))
out["expunge"] = [x.decode() for x in ok(m.expunge()) if x]
out["status_archive"] = ok(m.status("Archive", "(MESSAGES UIDNEXT UNSEEN)"))[0].decode()
ok(m.append("Archive", "(\\Flagged)", imaplib.Time2Internaldate(1795800000),
            b"From: bob@b.lab\r\nSubject: appended\r\n\r\nkept by APPEND\r\n"))
out["list_after"] = [l.decode() for l in ok(m.list())]
m.logout()

# Another client, another connection: the folder and its messages are there.
m2 = imaplib.IMAP4(host, port, timeout=10)
ok(m2.login("bob", "bob-pw"))
data = ok(m2.select("Archive", readonly=True))
out["archive_exists"] = int(data[0])
data = ok(m2.fetch("1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
out["archive"] = [d[1].decode().strip() for d in data if isinstance(d, tuple)]
out["archive_meta"] = [d[0].decode() for d in data if isinstance(d, tuple)]
ok(m2.select("INBOX"))
out["inbox_exists_again"] = int(m2.untagged_responses.get("EXISTS", [b"0"])[-1])
ok(m2.rename("Archive", "Old"))
out["list_renamed"] = [l.decode() for l in ok(m2.list())]
m2.logout()
print(json.dumps(out))
