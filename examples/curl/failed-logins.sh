#!/usr/bin/env bash
# Append a failed login and a user deletion to a Trail server with curl,
# then search the failed logins from the attacking address.
#
# The key needs the append and read scopes (the keys that trail serve
# --demo prints have one scope each); make one with:
#
#   KEY=$(trail keys create --log acme --create-log --scope append,read | tail -n 1)
#   TRAIL_SERVER=http://127.0.0.1:8080 TRAIL_KEY=$KEY ./failed-logins.sh
#
# On an error the server's JSON error message is printed on stderr and
# the script exits 1.
set -euo pipefail
server=${TRAIL_SERVER:-http://127.0.0.1:8080}
key=${TRAIL_KEY:?set TRAIL_KEY to a key with the append and read scopes}

# api CURL_ARGS...: send one request with the key and print the response
# body; on an HTTP error print the status and the server's error on stderr
# and exit 1 (unlike curl -f, which hides the server's message).
api() {
	local out status
	out=$(curl -sS -w '\n%{http_code}' -H "Authorization: Bearer $key" "$@")
	status=${out##*$'\n'}
	out=${out%$'\n'*}
	out=${out%$'\n'}
	if [ "$status" -ge 400 ]; then
		echo "trail server: $status $out" >&2
		if [ "$status" = 403 ]; then
			echo "this script needs a key with the append and read scopes" >&2
		fi
		exit 1
	fi
	printf '%s\n' "$out"
}

api -X POST "$server/v1/events" -H 'Content-Type: application/x-ndjson' --data-binary @- <<'NDJSON'
{"actor":{"id":"anonymous","type":"anonymous"},"action":"user.login.failed","outcome":"failure","reason":"invalid_credentials","targets":[{"type":"user","id":"u_1001"}],"source":{"ip":"203.0.113.7","user_agent":"curl"}}
{"actor":{"id":"u_1","type":"user","email":"admin@example.com","role":"admin"},"action":"user.delete","targets":[{"type":"user","id":"u_1001","name":"Jo"}],"source":{"ip":"192.0.2.10"}}
NDJSON

api -G "$server/v1/events" \
	--data-urlencode 'action=user.login.failed' --data-urlencode 'ip=203.0.113.7' --data-urlencode 'limit=10'
