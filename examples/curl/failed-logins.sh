#!/usr/bin/env bash
# Append a failed login and a user deletion to a Trail server with curl,
# then search the failed logins from the attacking address.
#
#   TRAIL_SERVER=http://127.0.0.1:8080 TRAIL_KEY=trail_... ./failed-logins.sh
set -euo pipefail
server=${TRAIL_SERVER:-http://127.0.0.1:8080}
key=${TRAIL_KEY:?set TRAIL_KEY to a key with the append and read scopes}

curl -fsS -X POST "$server/v1/events" \
	-H "Authorization: Bearer $key" -H 'Content-Type: application/x-ndjson' \
	--data-binary @- <<'NDJSON'
{"actor":{"id":"anonymous","type":"anonymous"},"action":"user.login.failed","outcome":"failure","reason":"invalid_credentials","targets":[{"type":"user","id":"u_1001"}],"source":{"ip":"203.0.113.7","user_agent":"curl"}}
{"actor":{"id":"u_1","type":"user","email":"admin@example.com","role":"admin"},"action":"user.delete","targets":[{"type":"user","id":"u_1001","name":"Jo"}],"source":{"ip":"192.0.2.10"}}
NDJSON
echo

curl -fsS -G "$server/v1/events" -H "Authorization: Bearer $key" \
	--data-urlencode 'action=user.login.failed' --data-urlencode 'ip=203.0.113.7' --data-urlencode 'limit=10'
echo
