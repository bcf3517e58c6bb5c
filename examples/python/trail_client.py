#!/usr/bin/env python3
"""A Trail client in Python's standard library: append a failed login and a
user deletion, then search the failed logins from the attacking address.

The key needs the append and read scopes (the keys that trail serve --demo
prints have one scope each); make one with:

    KEY=$(trail keys create --log acme --create-log --scope append,read | tail -n 1)
    TRAIL_SERVER=http://127.0.0.1:8080 TRAIL_KEY=$KEY python3 trail_client.py

On an error it prints the server's error message and exits 1.
"""
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request


class TrailError(Exception):
    """An error response: status, code, message and the offending field."""

    def __init__(self, status, body):
        err = body.get("error", {}) if isinstance(body, dict) else {}
        self.status = status
        self.code = err.get("code")
        self.field = err.get("field")
        super().__init__(f"{status} {err.get('message', body)}" + (f" (field {self.field})" if self.field else ""))


class Trail:
    def __init__(self, server, key):
        self.server = server.rstrip("/")
        self.key = key

    def _request(self, method, path, params=None, body=None):
        url = self.server + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.key)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            raise TrailError(e.code, body) from None

    def append(self, *events):
        """Store events, all or none; returns their ids and seqs."""
        return self._request("POST", "/v1/events", body={"events": list(events)})["events"]

    def search(self, **filters):
        """Yield matching events, newest first, across pages."""
        params = {k: v for k, v in filters.items() if v is not None}
        while True:
            page = self._request("GET", "/v1/events", params)
            yield from page["events"]
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]


NEEDS = "this example needs a key with the append and read scopes"


def main():
    key = os.environ.get("TRAIL_KEY")
    if not key:
        sys.exit("set TRAIL_KEY: " + NEEDS)
    trail = Trail(os.environ.get("TRAIL_SERVER", "http://127.0.0.1:8080"), key)
    try:
        run(trail)
    except TrailError as e:
        sys.exit(f"trail server: {e}" + (f"\n{NEEDS}" if e.status == 403 else ""))
    except urllib.error.URLError as e:
        sys.exit(f"cannot reach the trail server: {e.reason}")


def run(trail):
    receipts = trail.append(
        {
            "actor": {"id": "anonymous", "type": "anonymous"},
            "action": "user.login.failed",
            "outcome": "failure",
            "reason": "invalid_credentials",
            "targets": [{"type": "user", "id": "u_1001"}],
            "source": {"ip": "203.0.113.7", "user_agent": "python-urllib"},
        },
        {
            "actor": {"id": "u_1", "type": "user", "email": "admin@example.com", "role": "admin"},
            "action": "user.delete",
            "targets": [{"type": "user", "id": "u_1001", "name": "Jo"}],
            "source": {"ip": "192.0.2.10"},
        },
    )
    for r in receipts:
        print("stored", r["seq"], r["id"])
    failed = list(trail.search(action="user.login.failed", ip="203.0.113.7", limit=50))
    print(f"{len(failed)} failed logins from 203.0.113.7")
    for e in failed[:5]:
        print(e["received_at"], e["actor"]["id"], e["targets"][0]["id"], e.get("reason", ""))
    if not failed:
        sys.exit("the failed login just stored was not found")
    # A bad event is refused with the field that is wrong.
    try:
        trail.append({"action": "user.login"})
    except TrailError as e:
        print("refused as expected:", e)
        if e.status != 400 or not e.field:
            sys.exit("expected a 400 naming the field")
    else:
        sys.exit("an event without an actor was accepted")


if __name__ == "__main__":
    main()
