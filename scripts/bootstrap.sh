# Sourced by scripts/demo and scripts/test: make .venv with Python >= 3.11 and install into it.
# Usage: bootstrap "<extras>"   (e.g. bootstrap "dev")
bootstrap() {
    local extras="$1" python=""
    for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            python="$candidate"
            break
        fi
    done
    if [ -z "$python" ]; then
        echo "personalize needs Python 3.11 or newer on PATH (or set PYTHON=/path/to/python)" >&2
        exit 1
    fi
    if [ ! -x .venv/bin/python ]; then
        "$python" -m venv .venv
    fi
    local stamp=".venv/.installed-$extras"
    # The dev extra includes the demo's: after scripts/test, scripts/demo installs nothing.
    if [ "$extras" = demo ] && [ -f .venv/.installed-dev ] && [ ! pyproject.toml -nt .venv/.installed-dev ]; then
        return
    fi
    # Reinstall only when the project's dependencies changed.
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        .venv/bin/python -m pip install --quiet --upgrade pip
        .venv/bin/python -m pip install --quiet -e ".[$extras]"
        touch "$stamp"
    fi
}
