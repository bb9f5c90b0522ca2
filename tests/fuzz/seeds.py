#!/usr/bin/python3
"""Writes the generated seeds of tests/fuzz/corpus/ (the body modes, trailers,
chunk extensions and limits of issue 21's "blind spots", and a minimal
reproducer of each of its defects #1-#3 and #10), so that each is reviewable
here. Run from anywhere: /usr/bin/python3 tests/fuzz/seeds.py. The other seeds
were written by hand; this script overwrites only the files it names.

live_http and request_head inputs start with one byte that picks the write
(read) size: 0 here, all at once (request_head: 0x3f, pieces of 64 bytes). live_framing
inputs are described in tests/fuzz/live_framing.cpp."""
import os

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    os.makedirs(os.path.join(HERE, target), exist_ok=True)
    with open(os.path.join(HERE, target, name), "wb") as f:
        f.write(data)


def req(start, headers=(), body=b""):
    return start + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


def chunked(data, size=None, ext=b"", trailers=(), last_ext=b""):
    out, size = b"", size or max(len(data), 1)
    for i in range(0, len(data), size):
        piece = data[i:i + size]
        out += b"%x" % len(piece) + ext + b"\r\n" + piece + b"\r\n"
    return out + b"0" + last_ext + b"\r\n" + b"".join(t + b"\r\n" for t in trailers) + b"\r\n"


TE = b"Transfer-Encoding: chunked"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
PAD = b"X-Pad: " + b"a" * 200
BIG_PAD = b"X-Pad: " + b"b" * 900


def cl(body):
    return b"Content-Length: %d" % len(body)


# Raw HTTP: every body mode of every route, trailers small and large, chunk
# extensions, the limits, and the defects' reproducers.
HTTP = {
    # issue 21 #1: a trailer after the route matched moves the head the parameter points into
    "issue21-1-trailer-param": req(b"GET /users/7", [TE], chunked(b"hello", trailers=[PAD])),
    "chunked_small_trailer": req(b"POST /users/7?q=a", [TE], chunked(b"hello", trailers=[b"X-T: 1"])),
    "chunked_large_trailer": req(b"GET /files/a/b", [TE], chunked(b"hi", trailers=[BIG_PAD])),
    "chunked_many_trailers": req(b"GET /users/7", [TE], chunked(b"hi", trailers=[b"X-%d: v" % i for i in range(20)])),
    # issue 21 #2: an Authorization (and a second Host) arriving as trailers on a stream_body route
    "issue21-2-trailer-header": req(b"POST /upload/1", [TE, b"X-A: 1"],
                                    chunked(b"data", trailers=[b"Authorization: Bearer t", b"Host: evil"])),
    # issue 21 #3: a stream_body route that leaves its body unread and answers with a stream
    "issue21-3-stream-unread-body": req(b"POST /pipe/1", [cl(SMUGGLED)], SMUGGLED),
    "issue21-3-stream-unread-chunked": req(b"PUT /pipe/1", [TE], chunked(SMUGGLED)),
    # issue 21 #10: an unknown coding before chunked, an absolute-form target
    "issue21-10-te-foo-chunked": req(b"POST /echo", [b"Transfer-Encoding: foo, chunked"], chunked(b"hello")),
    "issue21-10-absolute-form": req(b"GET http://127.0.0.1/users/7", []),
    "chunk_extensions": req(b"POST /echo", [TE], chunked(b"hello world", size=4, ext=b';a=b;q="x y"', last_ext=b";end")),
    "chunk_extension_trailer": req(b"POST /users/9", [TE], chunked(b"abc", ext=b";e", trailers=[PAD])),
    "upload_trailer": req(b"POST /upload/5?q=1", [TE, b"X-Keep: 1"], chunked(b"x" * 40, size=7, trailers=[PAD])),
    "upload_expect_trailer": req(b"PUT /upload/5", [TE, b"Expect: 100-continue"], chunked(b"abc", trailers=[b"X-T: 1"])),
    "upload_length": req(b"POST /upload/5", [cl(b"hello")], b"hello"),
    "pipe_read_all_trailer": req(b"POST /pipe/3?read=all&q=z", [TE], chunked(b"body", trailers=[PAD])),
    "pipe_read_some": req(b"POST /pipe/3?read=3", [cl(b"abcdefgh")], b"abcdefgh") + req(b"GET /users/2"),
    "pipe_get_trailer": req(b"GET /pipe/4", [TE], chunked(b"x", trailers=[PAD])) + req(b"GET /users/2"),
    "events_get_trailer": req(b"GET /events/4?q=e", [TE], chunked(b"x", trailers=[PAD])),
    "events_post_read_all": req(b"POST /events/4?read=all", [TE], chunked(b"data", trailers=[PAD])),
    "events_post_unread": req(b"POST /events/4", [cl(SMUGGLED)], SMUGGLED),
    "form_chunked_trailer": req(b"POST /form", [TE, b"Content-Type: multipart/form-data; boundary=XyZ"],
                                chunked(b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nvalue\r\n--XyZ--\r\n',
                                        size=16, trailers=[PAD])),
    "pipelined_body_modes": (req(b"POST /users/1", [cl(b"abc")], b"abc") +
                             req(b"POST /users/2", [TE], chunked(b"def", trailers=[b"X-T: 2"])) +
                             req(b"POST /upload/3", [TE], chunked(b"ghi", trailers=[b"X-T: 3"])) +
                             req(b"POST /pipe/4?read=all", [cl(b"jkl")], b"jkl") +
                             req(b"GET /users/5", [b"Connection: close"])),
    "body_is_a_request": req(b"POST /echo", [cl(SMUGGLED)], SMUGGLED) + req(b"GET /users/1"),
    # the limits: 414, 431 (size and count), 413 (declared and chunked)
    "limit_request_line": req(b"GET /users/" + b"a" * 1100),
    "limit_head": req(b"GET /users/1", [b"X-Big: " + b"c" * 1000]),
    "limit_header_count": req(b"GET /users/1", [b"X-%d: v" % i for i in range(17)]),
    "limit_body_declared": req(b"POST /echo", [b"Content-Length: 2049"], b"x" * 10),
    "limit_body_chunked": req(b"POST /users/1", [TE], chunked(b"y" * 2100, size=512)),
    "limit_stream_body": req(b"POST /upload/1", [TE], chunked(b"z" * 3100, size=1024)),
    "limit_trailer": req(b"GET /users/1", [TE], chunked(b"a", trailers=[b"X-Pad: " + b"d" * 1100])),
}
for name, data in HTTP.items():
    write("live_http", name, b"\0" + data)

# The parser alone, one byte a read (the first byte: 0 -> pieces of 1).
# #2 alone: a trailer small enough to fit the head's spare capacity (a larger
# one moves the head first, and ASan reports #1)
write("request_head", "issue21-2-trailer-header",
      b"\x3f" + req(b"POST /upload/1", [TE, b"X-A: " + b"a" * 20], chunked(b"data", trailers=[b"Authorization: Bearer t"])))
for name in ["issue21-1-trailer-param", "chunked_large_trailer", "chunked_many_trailers",
             "chunk_extensions", "chunk_extension_trailer", "pipelined_body_modes", "issue21-10-te-foo-chunked",
             "limit_trailer"]:
    write("request_head", name, b"\x3f" + HTTP[name])  # 0x3f: pieces of 64 bytes

# live_framing: [piece] then NUL-separated fields, four per request:
# control [route][method][flags][param], head lines, body, trailer lines.
ROUTES = ["/", "/echo", "/users/{}", "/files/{}/x", "/upload/{}", "/pipe/{}", "/events/{}", "/form", "/trace",
          "/nope/{}", "/upload", "/pipe/{}?read=1"]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
NONE, LENGTH, CHUNKED, TRAILERS = 0, 1, 2, 3
EXPECT, EXT, CLOSE, READ_ALL = 4, 8, 0x40, 0x80


def byte(n, base):
    # a non-NUL byte that is n modulo base
    return bytes([n + base * (1 if n == 0 else 0)])


def framed(*requests, piece=0):
    fields = []
    for route, method, flags, param, head, body, trailers, *more in requests:
        ctl = byte(ROUTES.index(route), len(ROUTES)) + byte(METHODS.index(method), len(METHODS))
        ctl += bytes([flags | (0x20 if flags == 0 else 0)])  # 0x20: 7-byte chunks, harmless
        ctl += bytes([(more[0] if more else 0) | 2]) + param  # bit 1 unused: never a NUL
        fields += [ctl, head, body, trailers]
    return bytes([piece]) + b"\0".join(fields)


SMUGGLER = 1  # "more" bit 0: the harness puts a whole request at the body's start


FRAMED = {
    # on a whole-body route the X-Trailer-Only oracle (#2) fires first; a stream_body
    # handler reads its views after the trailers arrived, which ASan reports (#1)
    "issue21-1-trailer-param": framed(("/upload/{}", "POST", TRAILERS, b"7", b"", b"hello", PAD)),
    "issue21-2-trailer-authorization": framed(("/users/{}", "GET", TRAILERS, b"1", b"", b"x",
                                               b"Authorization: Bearer t\nHost: evil")),
    "issue21-3-stream-unread-body": framed(("/pipe/{}", "POST", LENGTH, b"1", b"", SMUGGLED, b""),
                                           ("/", "GET", CLOSE, b"", b"", b"", b"")),
    "whole_length": framed(("/users/{}", "POST", LENGTH, b"2", b"X-A: 1", b"abc", b""),
                           ("/echo", "PUT", LENGTH | EXPECT, b"", b"", b"hello", b"")),
    "whole_chunked_ext": framed(("/files/{}/x", "POST", CHUNKED | EXT | 0x10, b"f", b"", b"chunky body", b"")),
    "body_is_a_request": framed(("/echo", "POST", LENGTH, b"1", b"", SMUGGLED, b""),
                                ("/users/{}", "GET", NONE, b"2", b"", b"", b"")),
    # the classic smuggling probes, on whole-body and streamed-body routes that read it all
    "smuggler_whole": framed(("/echo", "POST", LENGTH, b"1", b"", b"", b"", SMUGGLER),
                             ("/users/{}", "PUT", CHUNKED, b"2", b"", b"x", b"", SMUGGLER)),
    "smuggler_streamed": framed(("/upload/{}", "POST", LENGTH, b"3", b"", b"", b"", SMUGGLER),
                                ("/pipe/{}", "PUT", CHUNKED | READ_ALL, b"4", b"", b"x", b"", SMUGGLER)),
    "upload_modes": framed(("/upload/{}", "POST", CHUNKED | 0x20, b"3", b"X-Keep: 1", b"upload body", b""),
                           ("/upload", "PUT", LENGTH | EXPECT, b"", b"", b"abc", b""),
                           ("/upload/{}", "POST", TRAILERS, b"4", b"", b"t", b"X-T: 1")),
    "pipe_modes": framed(("/pipe/{}", "POST", LENGTH | READ_ALL, b"5", b"", b"abc", b""),
                         ("/pipe/{}?read=1", "PUT", CHUNKED, b"6", b"", b"defg", b""),
                         ("/pipe/{}", "GET", TRAILERS, b"7", b"", b"h", b"X-T: 2")),
    "events_modes": framed(("/events/{}", "POST", LENGTH | READ_ALL, b"8", b"", b"abc", b""),
                           ("/events/{}", "GET", NONE, b"9", b"", b"", b"")),
    "form_chunked": framed(("/form", "POST", CHUNKED | 0x30, b"",
                            b"Content-Type: multipart/form-data; boundary=XyZ",
                            b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nvalue\r\n--XyZ--\r\n', b"")),
    "misc_routes": framed(("/trace", "GET", NONE, b"", b"X-Request-Id: abc", b"", b""),
                          ("/nope/{}", "DELETE", LENGTH, b"n", b"", b"xyz", b""),
                          ("/", "HEAD", NONE, b"", b"", b"", b""),
                          ("/echo", "OPTIONS", NONE, b"", b"", b"", b"")),
    "bytewise": framed(("/users/{}", "POST", CHUNKED | 0x10, b"b", b"", b"one byte at a time", b""), piece=200),
}
for name, data in FRAMED.items():
    write("live_framing", name, data)

# multipart: [piece] then the body; the first line also as a Content-Type.
write("multipart", "boundary-param-quoted", b"\x05multipart/form-data; boundary=\"fuzzb\"\r\n--fuzzb\r\n"
      b"Content-Disposition: form-data; name=\"a\"; filename=\"x.txt\"\r\nContent-Type: text/plain\r\n\r\n"
      b"data\r\n--fuzzb--\r\n")
