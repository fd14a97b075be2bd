#!/bin/bash
# nestboxctl's bash completion completes what a user would type, and its man
# page is well-formed roff.
set -u
src=${NESTBOX_SOURCE:?}
fail() { echo "FAIL: $*"; exit 1; }
top=$(mktemp -d)
trap 'rm -rf "$top"' EXIT
export XDG_DATA_HOME=$top
mkdir -p "$top/nestbox/machines/web" "$top/nestbox/machines/db" "$top/nestbox/machines/notone"
touch "$top/nestbox/machines/web/machine.ini" "$top/nestbox/machines/db/machine.ini"

if [ -f /usr/share/bash-completion/bash_completion ]; then
  source /usr/share/bash-completion/bash_completion
  source "$src/app/nestboxctl.bash-completion"
  complete_line() {  # complete_line WORDS...: COMPREPLY for the last word
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
    COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    _nestboxctl nestboxctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
    [ ${#COMPREPLY[@]} -gt 0 ] && printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' '
  }
  [ "$(complete_line nestboxctl sh)" = "shutdown " ] || fail "command: $(complete_line nestboxctl sh)"
  [ "$(complete_line nestboxctl start '')" = "db web " ] || fail "machines: $(complete_line nestboxctl start '')"
  [ "$(complete_line nestboxctl start --h)" = "--headless " ] || fail "option: $(complete_line nestboxctl start --h)"
  [ "$(complete_line nestboxctl log web --f)" = "--follow " ] || fail "log option"
  [ "$(complete_line nestboxctl forward web '')" = "add list remove " ] || fail "forward verbs"
  [ "$(complete_line nestboxctl create '')" = "" ] || fail "create offers names"
else
  echo "bash-completion is not installed: completion not checked (build-aux/install-deps.sh installs it)"
fi

if command -v groff > /dev/null; then
  warnings=$(groff -man -ww -z "$src/app/nestboxctl.1" 2>&1)
  [ -z "$warnings" ] || fail "man page: $warnings"
  text=$(groff -man -Tascii -P-cbou "$src/app/nestboxctl.1" 2>/dev/null)
  for word in start shutdown poweroff pause resume console log org.nestbox.Machine1 "EXIT STATUS"; do
    grep -q -- "$word" <<<"$text" || fail "man page lacks $word"
  done
fi
echo "completion and man page checks passed"
