#!/usr/bin/env bash
# Builds the .deb and checks it the way a plant engineer meets it: contents, lintian,
# install with dpkg, `uaedge check` on the installed config, the unit verified and scored,
# an upgrade over itself that keeps a locally edited conffile, remove and purge.
# Needs root (dpkg -i); run by tests/run.sh where dpkg is available.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
fail() { echo "package: FAIL: $*" >&2; exit 1; }

command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked --quiet
command -v lintian >/dev/null 2>&1 || {
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq lintian >/dev/null
}

cargo deb --quiet
deb=$(ls -t target/debian/uaedge_*.deb | head -n1)
echo "package: built $deb"

contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/uaedge ./etc/uaedge/config.yaml ./usr/lib/systemd/system/uaedge.service \
         ./usr/share/man/man1/uaedge.1.gz ./usr/share/doc/uaedge/copyright \
         ./usr/share/doc/uaedge/changelog.Debian.gz ./usr/share/doc/uaedge/examples/modbus-tcp.yaml \
         ./usr/share/doc/uaedge/exec-driver-protocol.md \
         ./usr/share/doc/uaedge/examples/drivers/s7/s7_driver.py; do
  grep -q " $f\$" <<<"$contents" || fail "$f missing from the package"
done
dpkg-deb -f "$deb" Depends | grep -q adduser || fail "Depends lacks adduser"
dpkg-deb -I "$deb" conffiles | grep -qx /etc/uaedge/config.yaml || fail "config.yaml is not a conffile"

lintian --fail-on error --suppress-tags embedded-library "$deb" || fail "lintian reports errors"
echo "package: contents and lintian ok"

# Install, upgrade over itself with an edited conffile, remove, purge.
$SUDO dpkg -i "$deb" >/dev/null
trap '$SUDO dpkg -P uaedge >/dev/null 2>&1 || true' EXIT
/usr/bin/uaedge --version | grep -q "^uaedge " || fail "uaedge --version"
/usr/bin/uaedge check -c /etc/uaedge/config.yaml || fail "installed config does not pass check"
id -nG uaedge | grep -qw dialout || fail "user uaedge is not in dialout"
[ "$(stat -c %G:%a /etc/uaedge/config.yaml)" = "uaedge:640" ] || fail "config.yaml permissions"
systemd-analyze verify /usr/lib/systemd/system/uaedge.service || fail "systemd-analyze verify"
score=$(systemd-analyze security --offline=true /usr/lib/systemd/system/uaedge.service 2>/dev/null \
  | sed -n 's/.*Overall exposure level for uaedge.service: \([0-9.]*\).*/\1/p')
awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }' || fail "security exposure $score > 2.0"
echo "package: installed; exposure $score"

echo "# edited on site" | $SUDO tee -a /etc/uaedge/config.yaml >/dev/null
$SUDO dpkg -i --force-confold "$deb" >/dev/null
grep -q "^# edited on site" /etc/uaedge/config.yaml || fail "upgrade lost the local conffile edit"
$SUDO dpkg -r uaedge >/dev/null
[ -f /etc/uaedge/config.yaml ] || fail "remove deleted the conffile"
[ ! -e /usr/bin/uaedge ] || fail "remove left the binary"
$SUDO mkdir -p /var/lib/uaedge && $SUDO touch /var/lib/uaedge/journal.redb
$SUDO dpkg -P uaedge >/dev/null
[ ! -e /etc/uaedge/config.yaml ] || fail "purge left the conffile"
[ ! -e /var/lib/uaedge ] || fail "purge left the state directory"
trap - EXIT
echo "package: 7 passed, 0 failed"
