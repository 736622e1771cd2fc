#!/usr/bin/env bash
# The system packages cerebro needs on Debian/Ubuntu, installed with apt when missing.
#
# `make setup` (so `make demo`, `make test`, `make up`, `make bench`) and .ci/run run this
# first, every time. It checks:
#   pg_config                                    postgresql-common
#   /usr/lib/postgresql/$PG_MAJOR/bin/postgres   postgresql-$PG_MAJOR
#   /usr/lib/postgresql/$PG_MAJOR/lib/plpython3.so  postgresql-plpython3-$PG_MAJOR
#   $PYTHON, and that it imports venv+ensurepip  pythonX.Y, pythonX.Y-venv
#   make                                         make
# and with --browser (or CEREBRO_BROWSER=1), for the web UI's browser test (tests/test_ui.py):
#   /usr/bin/chromium                            chromium
#   /usr/bin/chromedriver                        chromium-driver
# (`make test` and .ci/run pass --browser; `make demo` and the rest do not need a browser.)
# Nothing missing: prints nothing and exits 0 (it is fast: one Python start).
# Something missing, as root: `apt-get update`, then
#   `DEBIAN_FRONTEND=noninteractive apt-get install -y <the missing packages>`.
# Something missing, as any other user: prints the packages and the `sudo apt-get ...` line
# to run, and exits 1 without changing anything.
#
# Environment:
#   PG_MAJOR=15               PostgreSQL major version (Debian 12 ships 15)
#   PYTHON=/usr/bin/python3.11  the Python of the project's venv (the Makefile passes its own
#                             PYTHON). PL/Python embeds the system python3, so this must be the
#                             same minor version: 3.11 on Debian 12. Only /usr/bin/pythonX.Y can
#                             be installed with apt; any other path must already work.
#   CEREBRO_SYSROOT=DIR       prefix put before every probed path (tests point it at a scratch
#                             directory: an empty one is a bare machine). pg_config and make are
#                             then looked for only as DIR/usr/bin/<name>, not on PATH; $PYTHON
#                             is run as DIR$PYTHON. apt-get itself is the real one.
#   CEREBRO_DRY_RUN=1         print the apt-get commands (each after "+ ") instead of running
#                             them.
#   CEREBRO_BROWSER=1         the same as --browser.
set -euo pipefail

BROWSER=${CEREBRO_BROWSER:-}
for arg in "$@"; do
    case $arg in
    --browser) BROWSER=1 ;;
    *)
        echo "cerebro: unknown argument '$arg' (the only one is --browser)" >&2
        exit 2
        ;;
    esac
done

PG_MAJOR=${PG_MAJOR:-15}
PYTHON=${PYTHON:-/usr/bin/python3.11}
SYSROOT=${CEREBRO_SYSROOT:-}
DRY_RUN=${CEREBRO_DRY_RUN:-}

say() { echo "cerebro: $*" >&2; }

if ! [[ $PG_MAJOR =~ ^[0-9]+$ ]]; then
    say "PG_MAJOR must be a PostgreSQL major version such as 15, not '$PG_MAJOR'"
    exit 2
fi

# a command that is an executable at SYSROOT/usr/bin/NAME, or (on the real machine) on PATH
have_command() {
    [ -x "$SYSROOT/usr/bin/$1" ] || { [ -z "$SYSROOT" ] && command -v "$1" >/dev/null 2>&1; }
}

need=()
unfixable=()
have_command pg_config || need+=(postgresql-common)
[ -x "$SYSROOT/usr/lib/postgresql/$PG_MAJOR/bin/postgres" ] || need+=("postgresql-$PG_MAJOR")
[ -f "$SYSROOT/usr/lib/postgresql/$PG_MAJOR/lib/plpython3.so" ] ||
    need+=("postgresql-plpython3-$PG_MAJOR")

python=$PYTHON
if [[ $python != */* ]]; then # a bare name, as `make PYTHON=python3.11` allows
    python=/usr/bin/$PYTHON
    [ -n "$SYSROOT" ] || python=$(command -v "$PYTHON" 2>/dev/null || echo "$python")
fi
py_name=${python##*/}
if [ -x "$SYSROOT$python" ] && "$SYSROOT$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    :
elif [[ $python == /usr/bin/* && $py_name =~ ^python3\.[0-9]+$ ]]; then
    [ -x "$SYSROOT$python" ] || need+=("$py_name")
    need+=("$py_name-venv")
else
    unfixable+=("$PYTHON does not exist or cannot import venv and ensurepip, and apt installs only /usr/bin/python3.X: install it yourself or set PYTHON=/usr/bin/python3.X")
fi

have_command make || need+=(make)

if [ -n "$BROWSER" ]; then # Debian's names; selenium drives them headless
    [ -x "$SYSROOT/usr/bin/chromium" ] || need+=(chromium)
    [ -x "$SYSROOT/usr/bin/chromedriver" ] || need+=(chromium-driver)
fi

if [ ${#need[@]} -eq 0 ] && [ ${#unfixable[@]} -eq 0 ]; then
    exit 0
fi

for problem in "${unfixable[@]}"; do
    say "$problem"
done
[ ${#need[@]} -gt 0 ] || exit 1

say "missing system packages: ${need[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
    say "apt-get not found: install the equivalent packages with this system's package manager"
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    say "install them with (or run this again as root, which does it):"
    echo "    sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
    exit 1
fi

say "installing them with apt-get (running as root)"
if [ -n "$DRY_RUN" ]; then
    echo "+ apt-get update -qq"
    echo "+ DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${need[*]}"
else
    apt-get update -qq
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; then
        say "apt-get could not install ${need[*]}; on a release without PostgreSQL $PG_MAJOR," \
            "set PG_MAJOR to the one it has (the Python must stay the minor PL/Python embeds)"
        exit 1
    fi
fi
[ ${#unfixable[@]} -eq 0 ]
