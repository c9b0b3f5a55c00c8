#!/bin/sh
# System packages the tests need beyond the Python venv, installed with apt-get when missing.
# Idempotent and quiet: when every command is there, apt-get is not run at all. Runs as root
# (CI on a fresh Debian machine) or through sudo.
set -eu

# One line per need: the command the tests run, then the Debian package that provides it.
NEEDS="
promtool prometheus
chromium chromium
"

missing=$(printf '%s\n' "$NEEDS" | while read -r command_name package; do
    [ -n "$command_name" ] || continue
    command -v "$command_name" >/dev/null 2>&1 || printf ' %s' "$package"
done)
[ -n "$missing" ] || exit 0

if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1; then
    as_root="sudo"
else
    echo "setup-system.sh: not root and no sudo; as root run: apt-get install$missing" >&2
    exit 1
fi

echo "setup-system.sh: installing$missing"
# The prometheus package brings a daemon; only its promtool is wanted, so no service is started
# (policy-rc.d exit 101: "action forbidden"), unless the machine already has a policy of its own.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    $as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod +x $policy"
    trap '$as_root rm -f "$policy"' EXIT
fi
$as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
# shellcheck disable=SC2086  # $missing is a list of package names
$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
