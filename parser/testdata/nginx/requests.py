"""Tricky requests for gen.sh: each is sent raw over its own connection, so
that bytes reach nginx exactly as written here."""
import base64
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])


def send(raw, read=True, half_close=False):
    s = socket.create_connection((host, port), 5)
    s.sendall(raw)
    if half_close:
        s.shutdown(socket.SHUT_WR)
    if read:
        while s.recv(65536):
            pass
    s.close()


def req(method, uri, headers=(), proto=b"HTTP/1.1", body=b""):
    if isinstance(uri, str):
        uri = uri.encode()
    lines = [method + b" " + uri + (b" " + proto if proto else b"")]
    lines.append(b"Host: localhost")
    for h in headers:
        lines.append(h)
    if body:
        lines.append(b"Content-Length: %d" % len(body))
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


UA = b"User-Agent: "
send(req(b"GET", "/text", [UA + b"curl/8.5.0"]))
send(req(b"HEAD", "/text", [UA + b"curl/8.5.0"]))
send(req(b"GET", "/text", [UA + b"old"], proto=b"HTTP/1.0"))
send(req(b"GET", "/static/a.txt", [UA + b'Mozilla/5.0 "quoted" \\back\\slash', b"Referer: http://example.com/a?b=\"c\""]))
send(req(b"GET", b"/static/caf\xc3\xa9.txt?q=%22hello%20world%22&u=\xe2\x82\xac", [UA + b"Mozilla/5.0 (X11; Linux x86_64) \xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82"]))
send(req(b"GET", "/text", [UA + b"", b"Referer: "]))  # empty headers
send(req(b"GET", "/text", []))  # no User-Agent, no Referer
send(req(b"GET", "/text", [UA + b"bad utf8 \xff\xfe \xc3 end", b"X-Forwarded-For: 203.0.113.7, 10.0.0.1"]))
send(req(b"GET", "/text", [UA + b"tab\there", b"X-Custom: a \"b\" c"]))
send(req(b"POST", "/text", [UA + b"poster", b"Content-Type: application/x-www-form-urlencoded"], body=b"a=1&b=2"))
send(req(b"GET", "/text", [b"Authorization: Basic " + base64.b64encode(b"bob smith:pw")]))
send(req(b"GET", "/text", [b"Authorization: Basic " + base64.b64encode(b'a"b\\c:pw')]))
send(req(b"GET", "/" + "a" * 8000, [UA + b"long"]))  # 8 KB URI, fits the buffers
send(req(b"GET", "/" + "b" * 9000, [UA + b"too long"]))  # 414
send(req(b"GET", "/retry/x", [UA + b"retry"]))  # refused, then 502
send(req(b"GET", "/ok/y", [UA + b"ok", b"X-Custom: present"]))
send(req(b"GET", "/accel/z", [UA + b"accel"]))  # internal redirect: " : " lists
send(req(b"GET", "/missing", [UA + b"x"]))
send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)) + b"\r\n\r\n")  # TLS to plain port
send(b"GARBAGE\r\n\r\n")
send(b"get /lower HTTP/1.1\r\nHost: x\r\n\r\n")
send(b"GET /\x01ctl HTTP/1.1\r\nHost: x\r\n\r\n")
send(b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n")
send(b"\r\n\r\n", half_close=True)  # empty request line
send(b"GET /text\r\n")  # HTTP/0.9
send(req(b"OPTIONS", "*", [UA + b"opt"]))
send(req(b"GET", "/text?x=1%00y", [UA + b"json\"\\\x7f", b"X-Custom: \xe2\x82\xac"]))
send(b"GET /text HTTP/1.1\r\nHost: localhost\r\n", read=False)  # client gives up: 400 with no request end
