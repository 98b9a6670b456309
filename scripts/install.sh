#!/usr/bin/env bash
# Install PyCam's systemd services on a Raspberry Pi OS station (idempotent: run it again after
# an update; unchanged units are left alone).
#
#   scripts/install.sh [options]
#
# Roles (one per Pi; PyCam's two-Pi layout is master + slave):
#   master   masterpi + camera A (pycam-camera@on) + config server + the boot pulse that powers
#            the second Pi
#   slave    camera B (pycam-camera@off) + spectrometer + config server
#   single   one Raspberry Pi 5 with both cameras: masterpi + the camera pair (pycam-cameras:
#            cameras 0 and 1 in one process) + spectrometer + config server; no power pulse
#   all      everything on one machine, one service per camera (bench tests)
#
# Options:
#   --role master|slave|single|all   which services (default: master)
#   --user NAME                  account the services run as (default: $SUDO_USER or the current user)
#   --config FILE                station config (default: ~USER/pycam/station.toml; created with
#                                `pycam init-config` when missing, never overwritten)
#   --venv DIR                   Python environment (default: <repo>/.venv; created with
#                                --system-site-packages so Raspberry Pi OS's python3-picamera2 is visible)
#   --camera-driver NAME         picamera2 (default), gphoto2 or sim
#   --spectrometer-driver NAME   seabreeze (default) or sim
#   --unit-dir DIR               where units go (default: /etc/systemd/system)
#   --udev-dir DIR               where the spectrometer's udev rule goes (default: /etc/udev/rules.d)
#   --no-start                   install and enable, but do not (re)start the services
#   --render DIR                 only write the generated unit files into DIR (nothing else changes)
#   --dry-run                    print every unit and every command, change nothing
#   -h, --help                   this text
# Environment: PYCAM_SYSTEMCTL, PYCAM_UDEVADM and PYCAM_USERMOD replace systemctl, udevadm and
# usermod (tests).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TEMPLATES="$ROOT/scripts/systemd"
ROLE=master
RUN_USER=${SUDO_USER:-$(id -un)}
CONFIG=""
VENV="$ROOT/.venv"
CAMERA_DRIVER=picamera2
SPECTROMETER_DRIVER=seabreeze
UNIT_DIR=/etc/systemd/system
UDEV_DIR=/etc/udev/rules.d
UDEV_RULE=60-pycam-spectrometer.rules
DRY_RUN=0
START=1
RENDER_DIR=""

SYSTEMCTL=${PYCAM_SYSTEMCTL:-systemctl}
UDEVADM=${PYCAM_UDEVADM:-udevadm}
USERMOD=${PYCAM_USERMOD:-usermod}

usage() { sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "install.sh: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --role) ROLE=${2:?}; shift 2 ;;
    --user) RUN_USER=${2:?}; shift 2 ;;
    --config) CONFIG=${2:?}; shift 2 ;;
    --venv) VENV=${2:?}; shift 2 ;;
    --camera-driver) CAMERA_DRIVER=${2:?}; shift 2 ;;
    --spectrometer-driver) SPECTROMETER_DRIVER=${2:?}; shift 2 ;;
    --unit-dir) UNIT_DIR=${2:?}; shift 2 ;;
    --udev-dir) UDEV_DIR=${2:?}; shift 2 ;;
    --no-start) START=0; shift ;;
    --render) RENDER_DIR=${2:?}; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

case "$ROLE" in master|slave|single|all) ;; *) die "--role must be master, slave, single or all (got $ROLE)" ;; esac
case "$CAMERA_DRIVER" in picamera2|gphoto2|sim) ;; *) die "--camera-driver must be picamera2, gphoto2 or sim" ;; esac
[[ "$ROLE" != single || "$CAMERA_DRIVER" != gphoto2 ]] \
  || die "--role single drives two Picamera2 cameras: --camera-driver must be picamera2 or sim"
case "$SPECTROMETER_DRIVER" in seabreeze|sim) ;; *) die "--spectrometer-driver must be seabreeze or sim" ;; esac
[[ "$RUN_USER" != root ]] || die "refusing to run the services as root: pass --user NAME"

if id "$RUN_USER" >/dev/null 2>&1; then
  RUN_GROUP=$(id -gn "$RUN_USER")
  RUN_HOME=$(getent passwd "$RUN_USER" | cut -d: -f6)
elif [[ $DRY_RUN -eq 1 || -n "$RENDER_DIR" ]]; then
  RUN_GROUP=$RUN_USER
  RUN_HOME=/home/$RUN_USER
  echo "# note: user $RUN_USER does not exist here; showing what would be installed for it" >&2
else
  die "user $RUN_USER does not exist (create it or pass --user)"
fi
CONFIG=${CONFIG:-$RUN_HOME/pycam/station.toml}

# -- which units ---------------------------------------------------------------------------------
# "template-file unit-name" pairs
UNITS=()
case "$ROLE" in
  master) UNITS=("pycam-masterpi.service.in pycam-masterpi.service"
                 "pycam-camera@.service.in pycam-camera@.service"
                 "pycam-config-server.service.in pycam-config-server.service"
                 "pycam-second-pi-power.service.in pycam-second-pi-power.service")
          ENABLE=(pycam-masterpi.service pycam-camera@on.service pycam-config-server.service
                  pycam-second-pi-power.service) ;;
  slave)  UNITS=("pycam-camera@.service.in pycam-camera@.service"
                 "pycam-spectrometer.service.in pycam-spectrometer.service"
                 "pycam-config-server.service.in pycam-config-server.service")
          ENABLE=(pycam-camera@off.service pycam-spectrometer.service pycam-config-server.service) ;;
  single) UNITS=("pycam-masterpi.service.in pycam-masterpi.service"
                 "pycam-cameras.service.in pycam-cameras.service"
                 "pycam-spectrometer.service.in pycam-spectrometer.service"
                 "pycam-config-server.service.in pycam-config-server.service")
          ENABLE=(pycam-masterpi.service pycam-cameras.service pycam-spectrometer.service
                  pycam-config-server.service) ;;
  all)    UNITS=("pycam-masterpi.service.in pycam-masterpi.service"
                 "pycam-camera@.service.in pycam-camera@.service"
                 "pycam-spectrometer.service.in pycam-spectrometer.service"
                 "pycam-config-server.service.in pycam-config-server.service")
          ENABLE=(pycam-masterpi.service pycam-camera@on.service pycam-camera@off.service
                  pycam-spectrometer.service pycam-config-server.service) ;;
esac

render() {  # render TEMPLATE -> stdout
  local esc_sed='s/[\/&|]/\\&/g'
  sed -e "s|@USER@|$(printf '%s' "$RUN_USER" | sed "$esc_sed")|g" \
      -e "s|@GROUP@|$(printf '%s' "$RUN_GROUP" | sed "$esc_sed")|g" \
      -e "s|@HOME@|$(printf '%s' "$RUN_HOME" | sed "$esc_sed")|g" \
      -e "s|@ROOT@|$(printf '%s' "$ROOT" | sed "$esc_sed")|g" \
      -e "s|@VENV@|$(printf '%s' "$VENV" | sed "$esc_sed")|g" \
      -e "s|@CONFIG@|$(printf '%s' "$CONFIG" | sed "$esc_sed")|g" \
      -e "s|@CAMERA_DRIVER@|$CAMERA_DRIVER|g" \
      -e "s|@SPECTROMETER_DRIVER@|$SPECTROMETER_DRIVER|g" \
      "$TEMPLATES/$1"
}

for pair in "${UNITS[@]}"; do
  tpl=${pair%% *}
  [[ -f "$TEMPLATES/$tpl" ]] || die "missing unit template $TEMPLATES/$tpl"
done
for path in "$ROOT" "$VENV" "$CONFIG" "$RUN_HOME" "$UDEV_DIR"; do
  [[ "$path" != *[[:space:]]* ]] || die "paths with spaces are not supported in systemd units: $path"
done

# -- render only ---------------------------------------------------------------------------------
if [[ -n "$RENDER_DIR" ]]; then
  mkdir -p "$RENDER_DIR"
  for pair in "${UNITS[@]}"; do
    render "${pair%% *}" > "$RENDER_DIR/${pair##* }"
    echo "$RENDER_DIR/${pair##* }"
  done
  exit 0
fi

# -- helpers -------------------------------------------------------------------------------------
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
as_user() {
  if [[ $(id -un) == "$RUN_USER" ]]; then "$@"
  elif [[ $(id -u) -eq 0 ]]; then runuser -u "$RUN_USER" -- "$@"
  else sudo -u "$RUN_USER" "$@"; fi
}
step() {  # step DESCRIPTION CMD...: run it, or print it under --dry-run
  local what=$1; shift
  if [[ $DRY_RUN -eq 1 ]]; then
    local shown="$*"
    shown=${shown/#as_root /sudo }
    shown=${shown/#as_user /sudo -u $RUN_USER }
    printf '# %s\n  %s\n' "$what" "$shown"
  else
    echo "install.sh: $what" >&2
    "$@"
  fi
}

# -- Python environment --------------------------------------------------------------------------
if [[ ! -x "$VENV/bin/pycam" ]]; then
  if [[ ! -x "$VENV/bin/python" ]]; then
    step "create the Python environment (sees apt's python3-picamera2)" \
      python3 -m venv --system-site-packages "$VENV"
  fi
  step "install PyCam and its hardware extras" "$VENV/bin/python" -m pip install -q -e "$ROOT[hardware]"
fi

# -- station config ------------------------------------------------------------------------------
if [[ ! -f "$CONFIG" ]]; then
  step "create the station config with a fresh shared secret (edit master_host etc. afterwards)" \
    as_user "$VENV/bin/pycam" init-config "$CONFIG"
else
  [[ $DRY_RUN -eq 1 ]] && printf '# keep the existing station config %s\n' "$CONFIG"
fi

# -- units ---------------------------------------------------------------------------------------
CHANGED=0
for pair in "${UNITS[@]}"; do
  tpl=${pair%% *}; unit=${pair##* }
  target="$UNIT_DIR/$unit"
  if [[ $DRY_RUN -eq 1 ]]; then
    printf '# ---- %s ----\n' "$target"
    render "$tpl"
    printf '\n'
    continue
  fi
  tmp=$(mktemp)
  render "$tpl" > "$tmp"
  if [[ -f "$target" ]] && cmp -s "$tmp" "$target"; then
    echo "install.sh: $target unchanged" >&2
    rm -f "$tmp"
  else
    as_root install -D -m 0644 "$tmp" "$target"
    rm -f "$tmp"
    echo "install.sh: wrote $target" >&2
    CHANGED=1
  fi
done

if [[ $DRY_RUN -eq 1 || $CHANGED -eq 1 ]]; then
  step "reload systemd" as_root "$SYSTEMCTL" daemon-reload
fi
step "enable the services at boot" as_root "$SYSTEMCTL" enable "${ENABLE[@]}"
if [[ $START -eq 1 ]]; then
  step "(re)start the services" as_root "$SYSTEMCTL" restart "${ENABLE[@]}"
fi
if [[ "$SPECTROMETER_DRIVER" == seabreeze && "$ROLE" != master ]]; then
  # our own rule (seabreeze_os_setup would download its rules and ask for confirmation)
  rule_src="$ROOT/scripts/udev/$UDEV_RULE"
  rule_dst="$UDEV_DIR/$UDEV_RULE"
  if [[ $DRY_RUN -eq 1 ]]; then
    printf '# ---- %s ----\n' "$rule_dst"
    cat "$rule_src"
    printf '\n'
  fi
  if [[ $DRY_RUN -eq 1 ]] || ! cmp -s "$rule_src" "$rule_dst"; then
    step "install the spectrometer's udev rule (USB access for $RUN_USER via plugdev)" \
      as_root install -D -m 0644 "$rule_src" "$rule_dst"
    step "reload the udev rules" as_root "$UDEVADM" control --reload-rules
    step "apply them to a spectrometer already plugged in" \
      as_root "$UDEVADM" trigger --subsystem-match=usb --attr-match=idVendor=2457
  else
    echo "install.sh: $rule_dst unchanged" >&2
  fi
  if ! id -nG "$RUN_USER" 2>/dev/null | tr ' ' '\n' | grep -qx plugdev; then
    step "add $RUN_USER to the plugdev group" as_root "$USERMOD" -a -G plugdev "$RUN_USER"
  fi
fi
[[ $DRY_RUN -eq 1 ]] && echo "# dry run: nothing was changed"
exit 0
