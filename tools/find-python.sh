#!/usr/bin/env bash
# Print the path of a working Python X.Y interpreter, or nothing.
#
#   tools/find-python.sh 3.13
#
# Tries pythonX.Y on PATH, then pyenv's installs (a pyenv shim on PATH fails
# when X.Y is not the selected version, so each candidate is actually run).
set -uo pipefail
want="$1"
candidates=("python$want")
for dir in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$want".*/bin; do
    [[ -x "$dir/python$want" ]] && candidates+=("$dir/python$want")
done
candidates+=("/usr/local/bin/python$want" "/usr/bin/python$want")
for py in "${candidates[@]}"; do
    if exe="$("$py" -c "import sys; assert '%d.%d' % sys.version_info[:2] == '$want'; print(sys.executable)" 2>/dev/null)" && [[ -n "$exe" ]]; then
        echo "$exe"
        exit 0
    fi
done
exit 0
