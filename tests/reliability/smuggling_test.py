#!/usr/bin/python3
"""Request smuggling and framing abuse: nginx in front of keel, and keel alone.

usage: /usr/bin/python3 smuggling_test.py PATH/TO/keel_probe_app

Each pattern is one POST /echo whose framing is ambiguous (CL.TE, TE.CL,
obfuscated Transfer-Encoding, duplicate or bad Content-Length, obs-fold, bare
CR/LF, long chunk extensions) and whose bytes carry a complete second request
for the marker path /smuggled where a parser that frames it differently would
find it.

Through nginx (Debian's, a reverse proxy with proxy_http_version 1.1 and
keep-alive upstream connections): each pattern on a fresh client connection,
followed by a `Connection: close` sentinel request, then a victim GET from
another client. keel and nginx agree on every boundary when keel received
exactly the requests nginx says it forwarded (nginx's access log with
$upstream_addr against keel's access log, and /smuggled counted by keel no
more often than nginx forwarded it), and every victim gets its own answer.

Directly to keel: a pattern RFC 9112 says a server must reject gets 400 and
the connection closed; Content-Length with Transfer-Encoding is rejected or
framed by chunked alone and the connection closed (§6.1); a well-formed
variant (OWS around `chunked`, case) is served. /smuggled is never reached.

The fuzz corpus, differentially: every raw HTTP input of the fuzz corpora
(tests/fuzz/corpus/live_http and request_head, their first byte, the write
size, dropped) goes once to keel directly and once through nginx, each on a
fresh connection that the client half-closes once the answers have stopped. The requests
keel framed (its access log) and those nginx framed (its access log) must be
the same, in the same order, up to where one side rejected the input: keel
may reject where nginx accepts (each such case is printed and listed in
docs/fuzzing.md), never the reverse, and the two never frame a request the
other does not. Behind nginx, keel receives exactly what nginx forwarded.

Exits 77 (ctest: skipped) when nginx is missing, 1 on a failure.
"""
import json
import os
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import keeltest as kt  # noqa: E402

probe = sys.argv[1]
SM = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
SMP = b"POST /smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"


CLOSE = [False]  # directly to keel, every pattern asks for Connection: close (see direct())


def req(headers, body, start=b"POST /echo HTTP/1.1\r\nHost: x\r\n", eol=b"\r\n"):
    if CLOSE[0]:
        headers = [b"Connection: close"] + headers
    return start + b"".join(h + eol for h in headers) + eol + body


def chunk(data, ext=b""):
    return b"%x" % len(data) + ext + b"\r\n" + data + b"\r\n"


END = b"0\r\n\r\n"
# A body that ends at its zero chunk when read as chunked, with the marker after it.
CL_TE_BODY = END + SM
# A chunked body that carries the marker as chunk data.
TE_BODY = chunk(SM) + END


def cl(n):
    return b"Content-Length: %d" % n


# (name, bytes, what keel alone must do): reject = 400 and close; close = a
# response then close (400, or framed by chunked alone); serve = 200 with
# {"len": N}. The marker must never be served as a request.
def patterns():
    p = []
    # CL.TE: a front end honouring Content-Length forwards the marker as body.
    p.append(("CL.TE", req([cl(len(CL_TE_BODY)), b"Transfer-Encoding: chunked"], CL_TE_BODY), "close"))
    p.append(("TE.CL", req([b"Transfer-Encoding: chunked", cl(4)], TE_BODY), "close"))
    # TE.TE: one side may not see the Transfer-Encoding as chunked.
    for name, lines in [
        ("TE xchunked", [b"Transfer-Encoding: xchunked"]),
        ("TE chunked, identity", [b"Transfer-Encoding: chunked, identity"]),
        ("TE identity, chunked", [b"Transfer-Encoding: identity, chunked"]),
        ("TE chunked twice as a list", [b"Transfer-Encoding: chunked, chunked"]),
        ("TE duplicate chunked + identity", [b"Transfer-Encoding: chunked", b"Transfer-Encoding: identity"]),
        ("TE duplicate identity + chunked", [b"Transfer-Encoding: identity", b"Transfer-Encoding: chunked"]),
        ("TE duplicate chunked + chunked", [b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"]),
        ("TE space before colon", [b"Transfer-Encoding : chunked"]),
        ("TE value on an obs-fold line", [b"Transfer-Encoding:", b" chunked"]),
        ("TE after a bare LF", [b"X-A: b\nTransfer-Encoding: chunked"]),
        ("TE after a bare CR", [b"X-A: b\rTransfer-Encoding: chunked"]),
        ("TE with a NUL", [b"Transfer-Encoding: chunked\x00"]),
        ("TE vertical tab", [b"Transfer-Encoding:\x0bchunked"]),
    ]:
        p.append((name + " + CL", req([cl(len(CL_TE_BODY))] + lines, CL_TE_BODY), "reject_or_close"))
    # Not a Transfer-Encoding at all: Content-Length frames it, the marker is body
    # (nginx drops headers with underscores by default; keel keeps it as X-A's).
    p.append(("TE name with underscore + CL", req([cl(len(CL_TE_BODY)), b"Transfer_Encoding: chunked"], CL_TE_BODY),
              ("serve", len(CL_TE_BODY))))
    # RFC 9112 §5.2: an obs-fold is rejected or replaced by SP; keel rejects it, as
    # nginx does, so the two never disagree on where a header ends.
    p.append(("TE line folded onto the previous header + CL",
              req([cl(len(CL_TE_BODY)), b"X-A: b", b" Transfer-Encoding: chunked"], CL_TE_BODY),
              "reject"))
    # Well-formed spellings: OWS (space, tab) and case are allowed around/in "chunked".
    for name, line in [("TE leading space", b"Transfer-Encoding:  chunked"), ("TE tab", b"Transfer-Encoding:\tchunked"),
                       ("TE trailing space", b"Transfer-Encoding: chunked "), ("TE uppercase", b"Transfer-Encoding: CHUNKED")]:
        p.append((name, req([line], TE_BODY), ("serve", len(SM))))
    p.append(("TE xchunked alone", req([b"Transfer-Encoding: xchunked"], TE_BODY), "reject"))
    # Content-Length: the first value frames 5 bytes, the second the marker too.
    body = b"hello" + SM
    n = len(body)
    for name, lines, expect in [
        ("CL conflicting duplicates", [cl(5), cl(n)], "reject"),
        ("CL conflicting duplicates, long first", [cl(n), cl(5)], "reject"),
        ("CL conflicting list", [b"Content-Length: 5, %d" % n], "reject"),
        ("CL plus sign", [b"Content-Length: +5"], "reject"),
        ("CL hex", [b"Content-Length: 0x5"], "reject"),
        ("CL negative", [b"Content-Length: -5"], "reject"),
        ("CL empty", [b"Content-Length: "], "reject"),
        ("CL with letters", [b"Content-Length: 5a"], "reject"),
        ("CL space inside", [b"Content-Length: 5 %d" % n], "reject"),
        ("CL huge", [b"Content-Length: 99999999999999999999999"], "reject"),
        ("CL space before colon", [b"Content-Length : 5"], "reject"),
        ("CL folded", [b"Content-Length: 5", b" %d" % n], "reject"),
    ]:
        p.append((name, req(lines, body), expect))
    # Repeated identical values may be taken as one (RFC 9110 §8.6) or refused.
    p.append(("CL identical duplicates", req([cl(n), cl(n)], body), "serve_or_reject"))
    # obs-fold and bare CR/LF in the head.
    p.append(("obs-fold in a header", req([b"X-A: b", b" c", cl(n)], body), "reject"))
    p.append(("bare CR in a header value", req([b"X-A: b\rc", cl(n)], body), "reject"))
    p.append(("bare CR line ends", req([cl(n)], body, eol=b"\r"), "reject"))
    p.append(("bare LF line ends", req([cl(n)], body, start=b"POST /echo HTTP/1.1\nHost: x\n",
                                       eol=b"\n"), "serve_or_reject"))
    p.append(("bare LF after the request line", req([cl(n)], body,
                                                     start=b"POST /echo HTTP/1.1\nHost: x\r\n"), "serve_or_reject"))
    # Chunked bodies: extensions, sizes, line ends.
    for size in (4096, 100_000):
        ext = b";" + b"a" * size
        p.append((f"chunk extension of {size} bytes", req([b"Transfer-Encoding: chunked"],
                                                          chunk(SM, ext) + END), "serve_or_reject"))
    p.append(("chunk extension with a quoted CRLF", req([b"Transfer-Encoding: chunked"],
                                                        chunk(SM, b';a="x\r\n' + SM + b'"') + END), "reject"))
    p.append(("chunk size overflow", req([b"Transfer-Encoding: chunked"],
                                         b"10000000000000005\r\nhello\r\n" + END + SM), "reject"))
    p.append(("chunk size with a space", req([b"Transfer-Encoding: chunked"], b"5 5\r\nhello\r\n" + END + SM), "reject"))
    p.append(("chunk size negative", req([b"Transfer-Encoding: chunked"], b"-5\r\nhello\r\n" + END + SM), "reject"))
    p.append(("chunk data longer than its size", req([b"Transfer-Encoding: chunked"],
                                                     b"3\r\nhello\r\n" + END + SM), "reject"))
    p.append(("chunk line with a bare LF", req([b"Transfer-Encoding: chunked"],
                                               b"%x\n" % len(SM) + SM + b"\r\n" + END), "serve_or_reject"))
    p.append(("trailer smuggling a header", req([b"Transfer-Encoding: chunked"],
                                                chunk(b"hello") + b"0\r\nContent-Length: 40\r\n\r\n" + SMP),
              "close"))
    p.append(("Host twice", req([b"Host: y", cl(n)], body), "reject"))
    p.append(("no Host", req([cl(n)], body, start=b"POST /echo HTTP/1.1\r\n"), "reject"))
    return p


def stats(port):
    status, body = kt.http_get(port, "/stats")
    return json.loads(body) if status == 200 else None


def via_nginx(tmp, pats):
    app = kt.App([probe, "--threads", "2", "--drain-timeout", "2s"])
    nginx = kt.Nginx(tmp, [app.port], keepalive=8,
                     log_format="$request_method $request_uri $status upstream=$upstream_addr")
    outcomes = []
    try:
        for i, (name, data, _) in enumerate(pats):
            s = kt.connect(nginx.port)
            sentinel = b"GET /plaintext?sentinel=%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % i
            try:
                s.sendall(data + sentinel)
            except OSError:
                pass  # nginx may refuse and close before reading it all
            got, closed = kt.read_until_close(s, timeout=5)
            s.close()
            statuses = [r[0] for r in kt.parse_responses(got)]
            # A victim from another client, likely on the same upstream connection.
            v = kt.connect(nginx.port)
            v.sendall(b"GET /plaintext?victim=%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % i)
            vgot, _ = kt.read_until_close(v, timeout=5)
            v.close()
            vr = kt.parse_responses(vgot)
            kt.check(f"nginx: {name}: the next client gets its own answer", len(vr) == 1 and vr[0][0] == 200 and
                     vr[0][2] == b"ok", vgot[:300])
            if any(b == b"SMUGGLED" for _, _, b in kt.parse_responses(got)):
                print(f"note nginx: {name}: nginx itself read the marker as a pipelined request", flush=True)
            outcomes.append((name, statuses, closed))
            print(f"     nginx: {name}: client saw {statuses}{'' if closed else ' (still open)'}", flush=True)

        forwarded = [l for l in nginx.access_log() if "upstream=127.0.0.1" in l]
        forwarded_marker = sum(1 for l in forwarded if " /smuggled " in l)

        def keel_lines():
            return [o for o in app.log_lines("access") if not o.get("path", "").startswith("/stats")]
        # keel's log is written in order: once this request's line is there, every earlier one is.
        kt.http_get(app.port, "/stats?flush")
        kt.eventually(lambda: any(o.get("path") == "/stats?flush" for o in app.log_lines("access")), timeout=kt.T)
        got_lines = keel_lines()
        kt.check("nginx: keel received exactly as many requests as nginx forwarded",
                 len(got_lines) == len(forwarded), f"nginx forwarded {len(forwarded)}, keel logged {len(got_lines)}")
        nginx_paths = sorted(l.split(" ")[1] for l in forwarded)
        keel_paths = sorted(o.get("path", "") for o in got_lines)
        kt.check("nginx: ... and the same request targets", nginx_paths == keel_paths,
                 f"only nginx: {sorted(set(nginx_paths) - set(keel_paths))[:8]} "
                 f"only keel: {sorted(set(keel_paths) - set(nginx_paths))[:8]}")
        st = stats(app.port)
        kt.check("nginx: keel served /smuggled only as often as nginx forwarded it as a request",
                 st is not None and st["smuggled"] == forwarded_marker, f"{st} vs {forwarded_marker}")
        print(f"figures nginx: {len(pats)} patterns, {len(forwarded)} requests forwarded and received, "
              f"{sum(1 for _, s, _ in outcomes if s and s[0] == 400)} refused by nginx with 400, "
              f"{forwarded_marker} markers nginx itself parsed as requests", flush=True)
    finally:
        nginx.stop()
        code, err = app.stop()
        kt.check("nginx: keel exits 0 after the run", code == 0, err[-500:])


def direct(pats):
    # Each pattern asks to close, so a keel that served the marker as a pipelined
    # request would have answered it before the close, and nothing waits for a timeout.
    app = kt.App([probe, "--threads", "2", "--drain-timeout", "2s"])
    try:
        for name, data, expect in pats:
            s = kt.connect(app.port)
            try:
                s.sendall(data)
            except OSError:
                pass
            got, closed = kt.read_until_close(s, timeout=5)
            s.close()
            rs = kt.parse_responses(got)
            statuses = [r[0] for r in rs]
            marker = any(b == b"SMUGGLED" for _, _, b in rs)
            ok = closed and not marker and len(rs) == 1
            if expect == "reject":
                ok = ok and statuses == [400]
            elif expect == "reject_or_close" or expect == "close":
                ok = ok and statuses[0] in (200, 400)
            elif expect == "serve_or_reject":
                ok = ok and statuses[0] in (200, 400)
            else:  # ("serve", n)
                ok = ok and statuses == [200] and json.loads(rs[0][2]) == {"len": expect[1]}
            kt.check(f"keel: {name}: {expect if isinstance(expect, str) else 'serve'} -> {statuses}"
                     f"{'' if closed else ' (left open)'}", ok, got[:300])
        st = stats(app.port)
        kt.check("keel: /smuggled never reached", st is not None and st["smuggled"] == 0, str(st))
        rejected = kt.metric(app.port, 'keel_http_requests_total{method="POST",route="unmatched",status="400"}')
        print(f"figures keel: {len(pats)} patterns; {st}; POST 400s counted {rejected}", flush=True)
    finally:
        code, err = app.stop()
        kt.check("keel: exits 0 after the run", code == 0, err[-500:])


FUZZ = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus")
# Statuses that mean "this side refused the bytes" rather than "a request was framed and answered".
REFUSED = {400, 408, 413, 414, 431, 501, 505}


def corpus_inputs():
    out = []
    for target in ("live_http", "request_head"):
        d = os.path.join(FUZZ, target)
        for name in sorted(os.listdir(d)):
            with open(os.path.join(d, name), "rb") as f:
                data = f.read()[1:]  # the first byte is the harness's write size
            if data:
                out.append((f"{target}/{name}", data))
    return out


def send_then_half_close(port, data, quiet=0.1):
    """Sends `data`, half-closes once the server has been quiet for `quiet` s, reads until it
    closes. Not at once: keel (and nginx) take a half-close during a response for the client
    leaving, and cut a streamed response short, which would hide what follows it."""
    s = kt.connect(port)
    try:
        s.sendall(data)
    except OSError:
        pass  # refused and closed before reading it all
    s.settimeout(quiet)
    got, end = b"", time.monotonic() + 5
    while time.monotonic() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except OSError:
            chunk = b""
        if not chunk:
            s.close()
            return got, True
        got += chunk
    try:
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    rest, closed = kt.read_until_close(s, timeout=5)
    s.close()
    return got + rest, closed


# Disagreements the other way round (nginx refuses, keel serves) that are not
# about framing, each with its reason; docs/fuzzing.md lists them too. None today.
KNOWN = {}


def nginx_flush(nginx, tag):
    """nginx's access lines before the marker request `tag` (sent on a connection of its own
    after the input's was closed, so that the input's requests, logged when nginx lets go of
    their connection, are in the log first)."""
    kt.http_get(nginx.port, "/stats?" + tag)
    kt.eventually(lambda: any(" /stats?" + tag + " " in l for l in nginx.access_log()), timeout=kt.T)
    return [l for l in nginx.access_log() if " /stats?" not in l]


def keel_flush(app, tag):
    """keel's access lines so far, once everything before `tag` is written."""
    kt.http_get(app.port, "/stats?" + tag)
    kt.eventually(lambda: any(o.get("path") == "/stats?" + tag for o in app.log_lines("access")), timeout=kt.T)
    return [o for o in app.log_lines("access") if not o.get("path", "").startswith("/stats")]


def origin_form(target):
    # nginx logs an absolute-form target as it forwards it (origin-form)
    for scheme in ("http://", "https://"):
        if target.lower().startswith(scheme):
            rest = target[len(scheme):]
            return "/" + rest.split("/", 1)[1] if "/" in rest else "/"
    return target


def framed(entries):
    """[(method, path)] of the requests a side framed and answered, and whether it then refused."""
    reqs, refused = [], False
    for method, target, status in entries:
        if status in REFUSED:
            refused = True
            break
        reqs.append((method, origin_form(target).split("?", 1)[0][:64]))
    return reqs, refused


def verdict(k, n):
    """How keel's framing of one input (k) compares with nginx's (n); upper case: not allowed."""
    kreqs, krefused = framed(k)
    nreqs, nrefused = framed(n)
    if kreqs == nreqs:
        # The same requests; what follows them one side refused and the other
        # found incomplete at the client's close, or both alike.
        return "keel rejects, nginx accepts" if krefused and not nrefused else "agree"
    if len(kreqs) < len(nreqs) and kreqs == nreqs[:len(kreqs)]:
        return "keel rejects, nginx accepts"  # keel stopped (refused or closed) where nginx went on
    if len(nreqs) < len(kreqs) and nreqs == kreqs[:len(nreqs)]:
        return "NGINX REJECTS, KEEL ACCEPTS"
    return "FRAMED DIFFERENTLY"


def differential(tmp):
    direct_app = kt.App([probe, "--threads", "1", "--drain-timeout", "2s"])
    behind = kt.App([probe, "--threads", "1", "--drain-timeout", "2s"])
    # A client's half-close after its requests is not an abort (see send_then_half_close).
    nginx = kt.Nginx(tmp, [behind.port], keepalive=8, extra_location="      proxy_ignore_client_abort on;\n",
                     log_format="$request_method $request_uri $status upstream=$upstream_addr")
    keel_rejects, bad = [], []
    try:
        seen_direct = seen_behind = seen_nginx = 0
        for i, (name, data) in enumerate(corpus_inputs()):
            send_then_half_close(direct_app.port, data)
            lines = keel_flush(direct_app, f"d{i}")
            k = [(o.get("method", ""), o.get("path", ""), o.get("status", 0)) for o in lines[seen_direct:]]
            seen_direct = len(lines)
            if not direct_app.alive():
                kt.check(f"corpus: {name}: keel survives it", False, direct_app.stderr()[-2000:])
                return
            send_then_half_close(nginx.port, data)
            nlines = nginx_flush(nginx, f"n{i}")
            n = []
            for line in nlines[seen_nginx:]:
                parts = line.split(" ")
                if len(parts) >= 3 and parts[-2].isdigit():
                    n.append((parts[0], parts[1], int(parts[-2])))
                else:  # nginx refused before it had a request line: "- - 400" or an empty method
                    n.append(("", "", 400))
            forwarded = [line for line in nlines[seen_nginx:] if "upstream=127.0.0.1" in line]
            seen_nginx = len(nlines)
            blines = keel_flush(behind, f"b{i}")
            b = blines[seen_behind:]
            seen_behind = len(blines)
            kt.check(f"corpus: {name}: behind nginx, keel received exactly what nginx forwarded",
                     len(b) == len(forwarded), f"nginx forwarded {forwarded}, keel logged {[o.get('path') for o in b]}")
            v = verdict(k, n)
            if v.isupper() and name in KNOWN:
                print(f"note corpus: {name}: {v}, known: {KNOWN[name]}", flush=True)
                v = "known"
            if v == "keel rejects, nginx accepts":
                keel_rejects.append((name, k, n))
            elif v not in ("agree", "known"):
                bad.append((name, v, k, n))
            else:
                # Same framing; a different answer to the same request is worth a look (an
                # absolute-form target, issue 21 #10), not a framing disagreement.
                ks = [st for _, _, st in k]
                ns = [st for _, _, st in n]
                if ks != ns and len(ks) == len(ns):
                    print(f"note corpus: {name}: same framing, keel answered {ks}, nginx (and keel behind it) {ns}",
                          flush=True)
            print(f"     corpus: {name}: {v}: keel {[(m, t[:40], st) for m, t, st in k]} "
                  f"nginx {[(m, t[:40], st) for m, t, st in n]}", flush=True)
        for name, what, k, n in bad:
            kt.check(f"corpus: {name}: {what}", False, f"keel {k} nginx {n}")
        print(f"figures corpus: {len(corpus_inputs())} inputs, {len(keel_rejects)} that keel alone rejects, "
              f"{len(bad)} other disagreements", flush=True)
        for name, k, n in keel_rejects:
            print(f"note corpus: keel alone rejects {name}: keel {k} nginx {n}", flush=True)
    finally:
        nginx.stop()
        for app in (direct_app, behind):
            code, err = app.stop()
            kt.check("corpus: keel exits 0 after the run", code == 0, err[-500:])


def main():
    CLOSE[0] = True
    direct(patterns())
    CLOSE[0] = False
    pats = patterns()
    if not os.path.exists(kt.NGINX):
        if kt.failures:
            kt.finish()
        kt.skip(f"{kt.NGINX} is not installed (Debian package nginx-light); the direct part passed")
    with tempfile.TemporaryDirectory(prefix="keel-smuggle-") as tmp:
        via_nginx(tmp, pats)
    with tempfile.TemporaryDirectory(prefix="keel-corpus-") as tmp:
        differential(tmp)
    kt.finish()


if __name__ == "__main__":
    main()
