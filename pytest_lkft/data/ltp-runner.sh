#!/bin/sh
# ltp-runner.sh NAME: run pytest-lkft's plan of the LTP runtest file NAME on the device.
#
# The plan (/lkft/ltp/runtest/NAME) is the runtest file with the shard and the skipfile
# already applied on the host. kirk runs it when /opt/ltp/kirk and python3 are there,
# else runltp when ltp-pan is installed, else the loop below: POSIX sh (busybox is
# enough) printing ltp-pan's console blocks, which pytest_lkft.parsers.ltp reads:
#   <<<test_start>>> / tag=TAG stime=T / <<<test_output>>> / the test's output /
#   <<<execution_status>>> / duration=D termination_type=exited termination_id=RC ... /
#   <<<test_end>>>
name=$1
plan=/lkft/ltp/runtest/$name
LTPROOT=/opt/ltp
LTP_COLORIZE_OUTPUT=0
PATH="$LTPROOT/testcases/bin:$PATH"
export LTPROOT LTP_COLORIZE_OUTPUT PATH
if [ -z "$name" ] || [ ! -f "$plan" ]; then
    echo "ltp-runner: no plan '$plan'; usage: ltp-runner.sh RUNTEST" >&2
    exit 2
fi

if [ -x "$LTPROOT/kirk" ] && command -v python3 >/dev/null 2>&1; then
    cp "$plan" "$LTPROOT/runtest/lkft-$name" && cd "$LTPROOT" &&
        exec ./kirk --run-suite "lkft-$name" --no-colors
fi
if [ -x "$LTPROOT/runltp" ] && [ -x "$LTPROOT/bin/ltp-pan" ]; then
    cp "$plan" "$LTPROOT/runtest/lkft-$name" && cd "$LTPROOT" &&
        exec ./runltp -f "lkft-$name" -d "${TMPDIR:-/tmp}"
fi

cd "${TMPDIR:-/tmp}" || exit 2
failed=0
while read -r tag cmd; do
    case "$tag" in ''|'#'*) continue ;; esac
    echo "LTP: starting $tag ($cmd)" >/dev/kmsg 2>/dev/null
    start=$(date +%s)
    printf '<<<test_start>>>\ntag=%s stime=%s\ncmdline="%s"\ncontacts=""\nanalysis=exit\n' \
        "$tag" "$start" "$cmd"
    echo "<<<test_output>>>"
    (sh -c "$cmd") </dev/null 2>&1
    rc=$?
    how=exited
    if [ "$rc" -gt 128 ]; then how=signaled; rc=$((rc - 128)); fi
    [ "$rc" -ne 0 ] && [ "$rc" -ne 32 ] && failed=1
    printf '<<<execution_status>>>\ninitiation_status="ok"\n'
    printf 'duration=%s termination_type=%s termination_id=%s corefile=no\n' \
        "$(($(date +%s) - start))" "$how" "$rc"
    printf 'cutime=0 cstime=0\n<<<test_end>>>\n'
done <"$plan"
if [ "$failed" -eq 0 ]; then
    echo "INFO: ltp-pan reported all tests PASS"
else
    echo "INFO: ltp-pan reported some tests FAIL"
fi
exit "$failed"
