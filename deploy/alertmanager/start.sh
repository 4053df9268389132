#!/bin/sh
# Render alertmanager.yml with the webhook URL from the environment, then exec Alertmanager on
# the rendered copy (Alertmanager does no environment expansion; the URL is a secret and stays
# out of the repo and out of ConfigMaps). Used by docker-compose.yml, the Kubernetes Deployment
# (deploy/alertmanager/k8s.yaml) and tests/integration/test_alerting.py.
#
#   ALERTMANAGER_WEBHOOK_URL   required, http(s)://, no quotes or whitespace
#   ALERTMANAGER_TEMPLATE      the config to render (default: alertmanager.yml next to this script)
#   ALERTMANAGER_RENDERED      where the rendered copy goes (default: /tmp/alertmanager.yml, mode 600)
#   ALERTMANAGER_BIN           the binary (default: alertmanager; Debian: prometheus-alertmanager)
# Any arguments are passed to Alertmanager after --config.file.
set -eu

url="${ALERTMANAGER_WEBHOOK_URL:?set ALERTMANAGER_WEBHOOK_URL (the receiver webhook, e.g. a Slack incoming-webhook URL)}"
case "$url" in
  http://*|https://*) ;;
  *) echo "start.sh: ALERTMANAGER_WEBHOOK_URL must start with http:// or https://" >&2; exit 2 ;;
esac
case "$url" in
  *[\"\'\ \	\\]*) echo "start.sh: ALERTMANAGER_WEBHOOK_URL holds a quote, a backslash or whitespace" >&2; exit 2 ;;
esac
# A newline or carriage return (a Secret saved with a trailing newline) would fold into the YAML
# scalar and send every notification to a wrong URL.
nl='
'
cr=$(printf '\r')
case "$url" in
  *"$nl"*|*"$cr"*) echo "start.sh: ALERTMANAGER_WEBHOOK_URL holds a line break (a Secret with a trailing newline?)" >&2; exit 2 ;;
esac

template="${ALERTMANAGER_TEMPLATE:-$(dirname "$0")/alertmanager.yml}"
rendered="${ALERTMANAGER_RENDERED:-/tmp/alertmanager.yml}"
umask 077
rm -f "$rendered"  # a file someone else made in a shared /tmp keeps its owner and mode: never reuse it
# Literal replacement (index/substr, not a regex): the URL's & and / are taken as they are.
awk 'BEGIN { key = "${ALERTMANAGER_WEBHOOK_URL}"; url = ENVIRON["ALERTMANAGER_WEBHOOK_URL"] }
     /^[[:space:]]*#/ { print; next }
     { out = ""; line = $0
       while ((i = index(line, key)) > 0) { out = out substr(line, 1, i - 1) url; line = substr(line, i + length(key)) }
       print out line }' "$template" > "$rendered"
if grep -v '^[[:space:]]*#' "$rendered" | grep -q '\${'; then
  echo "start.sh: $rendered still holds an unexpanded \${...}" >&2
  exit 2
fi
exec "${ALERTMANAGER_BIN:-alertmanager}" --config.file="$rendered" "$@"
