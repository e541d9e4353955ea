#!/bin/sh
# Alertmanager's start in the compose stack: the webhook URL from $TENNIS_ASSETS_ALERT_WEBHOOK
# (the one Dagster's alerts use) into a file only this process reads, then alertmanager with
# docker/alertmanager/alertmanager.yml. Without a webhook, the route goes to the receiver
# `nowhere` instead: alerts are kept in Alertmanager (port 9093), none is sent.
set -eu
run=/tmp/alertmanager
config=/etc/alertmanager/alertmanager.yml
mkdir -p "$run"
chmod 700 "$run"
if [ -n "${TENNIS_ASSETS_ALERT_WEBHOOK:-}" ]; then
    (umask 077 && printf '%s' "$TENNIS_ASSETS_ALERT_WEBHOOK" > "$run/webhook-url")
else
    sed 's/^  receiver: webhook$/  receiver: nowhere/' "$config" > "$run/alertmanager.yml"
    config="$run/alertmanager.yml"
fi
unset TENNIS_ASSETS_ALERT_WEBHOOK
exec /bin/alertmanager --config.file="$config" "$@"
