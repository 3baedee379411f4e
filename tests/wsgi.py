"""Serve requests through Django's real WSGI handler, as a server would."""

import io


def wsgi_environ(path, method="POST", cookie="", body=b""):
    """Return the WSGI environ a server would pass for one request (a form body, if any)."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
    }
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    return environ


def wsgi_request(handler, path, cookie, method="POST"):
    """Serve one request through Django's real WSGI handler (signals and all)."""
    environ = wsgi_environ(path, method, cookie)
    statuses = []
    response = handler(environ, lambda status, headers: statuses.append(status))
    body = b"".join(response)
    response.close()  # as WSGI servers do: fires request_finished, which closes old connections
    return statuses[0], body
