"""A scripted HTTP server for the --reload-url tests: answers each request
with the next status of a comma-separated list (the last one repeats),
appends "<METHOD> <path>" per request to LOG_FILE (then " auth=<value>"
when an Authorization header came), and writes the port it
listens on (127.0.0.1, a free one) to PORT_FILE.

Usage: httpd.py PORT_FILE LOG_FILE STATUSES  (e.g. 503,503,200)"""
import http.server
import sys

port_file, log_file, statuses = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
answered = 0


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global answered
        auth = self.headers.get("Authorization")
        with open(log_file, "a") as f:
            f.write("%s %s%s\n" % (self.command, self.path, " auth=" + auth if auth else ""))
        status = int(statuses[min(answered, len(statuses) - 1)])
        answered += 1
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os

os.rename(port_file + ".tmp", port_file)
server.serve_forever()
