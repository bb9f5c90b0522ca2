#!/usr/bin/python3
"""apps/todo killed with SIGKILL at random moments under a concurrent POST load.

usage: /usr/bin/python3 todo_crash_test.py PATH/TO/todo [ROUNDS]

Each round starts todo on one database file, runs WRITERS client threads that
POST todos over keep-alive connections as fast as todo answers, and SIGKILLs
the process after a random delay (fixed seed when CI=true; KEEL_TEST_SEED
repeats any run). After each kill, before the restart, Python's sqlite3 opens
the file: `PRAGMA integrity_check` must say ok and every todo whose 201
reached a client must be in the table. After the restart, todo itself must
list every acknowledged todo (paging GET /api/todos) and serve GET by id.
Two more rounds kill todo while it starts on a fresh file (migrations).
Exits 1 on a lost or corrupt write, 77 (ctest: skipped) never.
"""
import http.client
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import keeltest as kt  # noqa: E402

todo = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 24
WRITERS = 4
SECRET = "crash-test-secret-crash-test-secret"  # todo wants at least 32 bytes
rng = kt.rng()


def token(sub):
    p = subprocess.run([todo, "token", "--sub", sub, "--jwt-secret", SECRET], capture_output=True, text=True,
                       timeout=kt.T)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


TOKEN = token("alice")
AUTH = {"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"}


def start(db):
    return kt.App([todo, "--db", db, "--jwt-secret", SECRET, "--threads", "2", "--drain-timeout", "2s"])


def writer(port, prefix, acked, stop):
    """POSTs until stop is set or the connection dies; records (id, title) of every 201 it read."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=kt.T)
    i = 0
    try:
        while not stop.is_set():
            title = f"{prefix}-{i}"
            conn.request("POST", "/api/todos", body=json.dumps({"title": title}), headers=AUTH)
            r = conn.getresponse()
            body = r.read()
            if r.status == 201:
                acked.append((json.loads(body)["id"], title))
            elif r.status != 503:  # 503: the database was busy; the client may retry
                raise RuntimeError(f"POST answered {r.status}: {body[:200]!r}")
            i += 1
    except (OSError, http.client.HTTPException):
        pass  # the kill: whatever was in flight never got its 201
    finally:
        conn.close()


def offline_check(db, acked, label):
    """The file as the killed process left it: integrity, and every acknowledged row there."""
    con = sqlite3.connect(db, timeout=kt.T)
    try:
        integrity = con.execute("PRAGMA integrity_check").fetchall()
        rows = dict(con.execute("SELECT id, title FROM todos WHERE owner = 'alice'").fetchall())
    finally:
        con.close()
    kt.check(f"{label}: integrity_check ok", integrity == [("ok",)], str(integrity[:5]))
    missing = [(i, t) for i, t in acked if rows.get(i) != t]
    kt.check(f"{label}: all {len(acked)} acknowledged todos in the file", not missing, f"missing {missing[:10]}")
    return len(rows)


def listed_ids(port):
    ids, after = set(), None
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=kt.T)
    try:
        while True:
            conn.request("GET", "/api/todos?limit=200" + (f"&after={after}" if after else ""), headers=AUTH)
            r = conn.getresponse()
            page = json.loads(r.read())
            ids.update(item["id"] for item in page["items"])
            after = page["next"]
            if after is None:
                return ids
    finally:
        conn.close()


def get_by_id(port, todo_id):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=kt.T)
    try:
        conn.request("GET", f"/api/todos/{todo_id}", headers=AUTH)
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def main():
    tmp = tempfile.mkdtemp(prefix="keel-todo-crash-")
    db = os.path.join(tmp, "todo.db")
    acked = []  # every (id, title) whose 201 a client read, over all rounds
    started = time.monotonic()
    kills = 0
    for rnd in range(ROUNDS):
        app = start(db)
        stop = threading.Event()
        round_acked = []
        threads = [threading.Thread(target=writer, args=(app.port, f"r{rnd}w{w}", round_acked, stop))
                   for w in range(WRITERS)]
        for t in threads:
            t.start()
        # Let some writes through first, then kill at a random moment of the load.
        if not kt.check(f"round {rnd}: todo acknowledges writes", kt.eventually(lambda: len(round_acked) >= 5)):
            print(app.stderr()[-2000:], flush=True)
        time.sleep(rng.uniform(0.0, 0.4))  # the random moment of the kill, not a wait for an event
        app.kill()
        kills += 1
        for t in threads:
            t.join(kt.T)
        stop.set()
        acked.extend(round_acked)
        rows = offline_check(db, acked, f"round {rnd}")
        print(f"round {rnd}: killed after {len(round_acked)} acknowledged POSTs; {rows} rows in the file", flush=True)

        # The restart opens the same file; every acknowledged todo is served again.
        app = start(db)
        ids = listed_ids(app.port)
        missing = [i for i, _ in acked if i not in ids]
        kt.check(f"round {rnd}: restarted todo lists every acknowledged todo", not missing, f"missing {missing[:10]}")
        sample = acked[-1] if acked else None
        if sample:
            status, body = get_by_id(app.port, sample[0])
            kt.check(f"round {rnd}: GET /api/todos/{sample[0]} after the restart", status == 200 and
                     body.get("title") == sample[1], f"{status} {body}")
        code, err = app.stop()
        kt.check(f"round {rnd}: todo drains and exits 0", code == 0, err[-500:])

    # Killed during startup, while it creates and migrates a fresh file.
    for k in range(2):
        fresh = os.path.join(tmp, f"fresh{k}.db")
        p = subprocess.Popen([todo, "--db", fresh, "--jwt-secret", SECRET, "--listen", "127.0.0.1:0"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, 0.03))  # the random moment of the kill
        p.kill()
        p.wait(kt.T)
        kills += 1
        app = start(fresh)
        status, body = kt.http_get(app.port, "/api/todos", headers={"Authorization": "Bearer " + TOKEN})
        kt.check(f"fresh file {k}: todo starts after a kill during startup and serves", status == 200, body[:200])
        app.stop()
        con = sqlite3.connect(fresh)
        ok = con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        con.close()
        kt.check(f"fresh file {k}: integrity_check ok", ok)

    print(f"figures: {kills} SIGKILLs survived, {len(acked)} todos acknowledged, all present; "
          f"{time.monotonic() - started:.1f} s", flush=True)
    kt.finish()


if __name__ == "__main__":
    main()
