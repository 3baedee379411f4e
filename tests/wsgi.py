"""Serve requests through Django's real WSGI handler, as a server would."""

import io


def wsgi_request(handler, path, cookie, method="POST"):
    """Serve one request through Django's real WSGI handler (signals and all)."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": "testserver",
        "HTTP_COOKIE": cookie,
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_LENGTH": "0",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
    }
    statuses = []
    response = handler(environ, lambda status, headers: statuses.append(status))
    body = b"".join(response)
    response.close()  # as WSGI servers do: fires request_finished, which closes old connections
    return statuses[0], body
