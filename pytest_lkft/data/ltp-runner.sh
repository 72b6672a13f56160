#!/bin/sh
# ltp-runner.sh NAME [AFTER]: run pytest-lkft's plan of the LTP runtest file NAME on the
# device; with AFTER, only the tests after the tag AFTER (the run resumes there after the
# device died during AFTER and was booted afresh).
#
# /lkft/ltp/settings sets the per-test timeout ($LKFT_LTP_TIMEOUT seconds, times
# $LTP_TIMEOUT_MUL when set, which the tests see too) and the console's loglevel while the
# tests run ($LKFT_LTP_CONSOLE_LOGLEVEL, data/ltp.yaml). With --lkft-ltp the plan
# (/lkft/ltp/runtest/NAME) is the runtest file with the shard and the skipfile already
# applied on the host. Without it ($LKFT_LTP_MAKE_PLAN=1), LTP is the rootfs's own
# (/opt/ltp): the plan is made here from /opt/ltp/runtest/NAME with the shard
# ($LKFT_LTP_SHARD, INDEX/TOTAL) and the skipfile tags (/lkft/ltp/skipfile, named
# $LKFT_LTP_SKIPFILE_NAME in the TCONF line), as pytest_lkft/provision/ltp.py's plan()
# does on the host.
#
# kirk runs the plan when /opt/ltp/kirk and python3 are there, else runltp when ltp-pan
# is installed, else the loop below: POSIX sh (busybox is enough) printing ltp-pan's
# console blocks, which pytest_lkft.parsers.ltp reads:
#   <<<test_start>>> / tag=TAG stime=T / <<<test_output>>> / the test's output /
#   <<<execution_status>>> / duration=D termination_type=exited termination_id=RC ... /
#   <<<test_end>>>
# A test still running after the timeout is killed with its process group: its block
# says `lkft: TBROK: timed out ...` and termination_type=signaled, and the next test runs.
name=$1
after=$2
plan=/lkft/ltp/runtest/$name
settings=/lkft/ltp/settings
LTPROOT=/opt/ltp
LTP_COLORIZE_OUTPUT=0
PATH="$LTPROOT/testcases/bin:$PATH"
LKFT_LTP_TIMEOUT=600
export LTPROOT LTP_COLORIZE_OUTPUT PATH

# The runtest files of the rootfs, comma-separated, for the message about a missing one.
runtest_files() {
    have=
    for file in "$LTPROOT"/runtest/*; do
        [ -f "$file" ] && have="$have${have:+, }${file##*/}"
    done
    echo "${have:-none (is LTP installed at $LTPROOT? else pass --lkft-ltp PATH|URL)}"
}

# make_plan RUNTEST: its test lines, the shard's share, skipfile tags made TCONF skips.
make_plan() {
    index=1 total=1
    if [ -n "$LKFT_LTP_SHARD" ]; then index=${LKFT_LTP_SHARD%/*} total=${LKFT_LTP_SHARD#*/}; fi
    n=0
    while read -r tag cmd; do
        case "$tag" in ''|'#'*) continue ;; esac
        n=$((n + 1))
        [ $(((n - 1) % total)) -eq $((index - 1)) ] || continue
        if grep -Fxq -- "$tag" /lkft/ltp/skipfile 2>/dev/null; then
            cmd="echo 'lkft: TCONF: $tag is in the skipfile $LKFT_LTP_SKIPFILE_NAME'; exit 32"
        fi
        printf '%s %s\n' "$tag" "$cmd"
    done <"$1"
}

if [ -z "$name" ]; then
    echo "ltp-runner: no runtest file named; usage: ltp-runner.sh RUNTEST" >&2
    exit 2
fi
[ -f "$settings" ] && . "$settings"
if [ "$LKFT_LTP_MAKE_PLAN" = 1 ]; then
    if [ ! -f "$LTPROOT/runtest/$name" ]; then
        echo "ltp-runner: no runtest file $LTPROOT/runtest/$name on the device;" \
            "$LTPROOT/runtest has: $(runtest_files)" >&2
        exit 2
    fi
    mkdir -p "${plan%/*}" && make_plan "$LTPROOT/runtest/$name" >"$plan" || exit 2
fi
if [ ! -f "$plan" ]; then
    echo "ltp-runner: no plan '$plan'; usage: ltp-runner.sh RUNTEST" >&2
    exit 2
fi

# What LTP's tests expect of a system: loopback up, loop devices (a distribution's udev
# loads the module; tst_device only looks for /dev/loop*), the kernel's config. tst_kconfig
# reads /proc/config.gz, else /boot/config-<release>; a build without modules has its
# config as /boot/config-unknown (no release to name it by).
ip link set lo up 2>/dev/null || ifconfig lo up 2>/dev/null
modprobe loop 2>/dev/null
if [ ! -e /proc/config.gz ] && [ ! -e "/boot/config-$(uname -r)" ] && [ -z "$KCONFIG_PATH" ]; then
    for config in /boot/config-*; do
        [ -f "$config" ] && export KCONFIG_PATH="$config"
    done
fi
limit=$LKFT_LTP_TIMEOUT
if [ -n "$LTP_TIMEOUT_MUL" ]; then
    export LTP_TIMEOUT_MUL
    limit=$(awk -v t="$LKFT_LTP_TIMEOUT" -v m="$LTP_TIMEOUT_MUL" 'BEGIN { printf "%d", t * m + 0.5 }')
fi

# quiet_console: while the tests run, only kernel messages below $LKFT_LTP_CONSOLE_LOGLEVEL
# reach the console (5: warnings and worse, what a crash check looks for); info and notice
# messages stay in dmesg, off the serial line, whose every character costs the guest time.
# The level is never raised, and a loglevel=, quiet, debug or ignore_loglevel on the kernel
# command line (--lkft-boot-args) is the user's choice: the console is left as booted.
# restore_console puts the level back when the runner ends.
console_level=
quiet_console() {
    [ -n "$LKFT_LTP_CONSOLE_LOGLEVEL" ] && [ -w /proc/sys/kernel/printk ] || return 0
    read -r cmdline </proc/cmdline
    for word in $cmdline; do
        case "$word" in loglevel=*|quiet|debug|ignore_loglevel) return 0 ;; esac
    done
    read -r level _ </proc/sys/kernel/printk
    [ "$level" -gt "$LKFT_LTP_CONSOLE_LOGLEVEL" ] || return 0
    echo "$LKFT_LTP_CONSOLE_LOGLEVEL" >/proc/sys/kernel/printk && console_level=$level
}
restore_console() {
    [ -z "$console_level" ] || echo "$console_level" >/proc/sys/kernel/printk
}
quiet_console

if [ -x "$LTPROOT/kirk" ] && command -v python3 >/dev/null 2>&1; then
    cp "$plan" "$LTPROOT/runtest/lkft-$name" && cd "$LTPROOT" &&
        ./kirk --run-suite "lkft-$name" --no-colors
    status=$?
    restore_console
    exit "$status"
fi
if [ -x "$LTPROOT/runltp" ] && [ -x "$LTPROOT/bin/ltp-pan" ]; then
    cp "$plan" "$LTPROOT/runtest/lkft-$name" && cd "$LTPROOT" &&
        ./runltp -f "lkft-$name" -d "${TMPDIR:-/tmp}"
    status=$?
    restore_console
    exit "$status"
fi

# watch_tests: one process for the whole run (not one per test, which cost each test
# three more processes): every second, the test of /tmp/.lkft-test ("PID START", START
# in centiseconds since boot) that has run past $limit seconds is killed with its
# process group, and /tmp/.lkft-timed-out.PID says so. The second is waited for by a
# read that times out on a FIFO nobody writes (no process started each second, as
# `sleep 1` was), when this shell's read has a working -t (busybox, bash; not dash).
watch_tests() {
    tick=
    if mkfifo /tmp/.lkft-tick 2>/dev/null && exec 3<>/tmp/.lkft-tick; then
        rm -f /tmp/.lkft-tick
        uptime_cs
        before=$cs
        read -r -t 0.2 line <&3 2>/dev/null
        uptime_cs
        [ "$((cs - before))" -ge 10 ] && tick=fifo
    fi
    while one_second; do
        read -r pid started </tmp/.lkft-test 2>/dev/null || continue
        uptime_cs
        [ "$((cs - started))" -ge "$((limit * 100))" ] || continue
        : >"/tmp/.lkft-timed-out.$pid"
        kill -KILL -"$pid" 2>/dev/null
    done
}

# one_second: wait a second (see watch_tests).
one_second() {
    if [ -n "$tick" ]; then
        read -r -t 1 line <&3
        return 0
    fi
    sleep 1
}

# run_test CMD: CMD in a session of its own (so a timeout kills all it started); its
# exit status, 128+9 when the watcher killed it after $limit seconds. A command of plain
# words (most of LTP's) is run as those words, without a shell in between, as ltp-pan
# does; one with shell syntax (quotes, $, ;, |, redirections, globs, VAR=) under sh -c.
run_test() {
    case "$1" in
    *[!-A-Za-z0-9_./,:+@%\ ]*) setsid sh -c "$1" </dev/null 2>&1 & ;;
    *) setsid $1 </dev/null 2>&1 & ;;
    esac
    test_pid=$!
    echo "$test_pid $start" >/tmp/.lkft-test
    wait "$test_pid"
    status=$?
    : >/tmp/.lkft-test
    if [ -f "/tmp/.lkft-timed-out.$test_pid" ]; then
        echo "lkft: TBROK: timed out after $limit s (LKFT_LTP_TIMEOUT=$LKFT_LTP_TIMEOUT" \
            "LTP_TIMEOUT_MUL=${LTP_TIMEOUT_MUL:-unset}), killed"
    fi
    return "$status"
}

# uptime_cs: $cs, centiseconds since boot (/proc/uptime; no process started per test).
uptime_cs() {
    read -r up _ </proc/uptime
    cs=${up%.*}${up#*.}
}

uptime_cs
booted=$(($(date +%s) - cs / 100))
: >/tmp/.lkft-test
watch_tests </dev/null >/dev/null 2>&1 &
watcher=$!
trap 'kill "$watcher" 2>/dev/null; restore_console' EXIT
cd "${TMPDIR:-/tmp}" || exit 2
failed=0
skipping=${after:+1}
while read -r tag cmd; do
    case "$tag" in ''|'#'*) continue ;; esac
    if [ -n "$skipping" ]; then
        [ "$tag" = "$after" ] && skipping=
        continue
    fi
    case "$cmd" in
    "echo 'lkft: TCONF: "*"'; exit 32") # a skipfile tag: its block, no process started
        text=${cmd#echo \'}
        printf '<<<test_start>>>\ntag=%s stime=%s\ncmdline="%s"\ncontacts=""\nanalysis=exit\n' \
            "$tag" "$booted" "$cmd"
        printf '<<<test_output>>>\n%s\n<<<execution_status>>>\ninitiation_status="ok"\n' \
            "${text%\'; exit 32}"
        printf 'duration=0 termination_type=exited termination_id=32 corefile=no\n'
        printf 'cutime=0 cstime=0\nlkft_elapsed=0.00\n<<<test_end>>>\n'
        continue
        ;;
    esac
    echo "<5>LTP: starting $tag ($cmd)" >/dev/kmsg 2>/dev/null # notice: dmesg, not the console
    uptime_cs
    start=$cs
    printf '<<<test_start>>>\ntag=%s stime=%s\ncmdline="%s"\ncontacts=""\nanalysis=exit\n' \
        "$tag" "$((booted + start / 100))" "$cmd"
    echo "<<<test_output>>>"
    run_test "$cmd"
    rc=$?
    how=exited
    if [ "$rc" -gt 128 ]; then how=signaled; rc=$((rc - 128)); fi
    [ "$rc" -ne 0 ] && [ "$rc" -ne 32 ] && failed=1
    uptime_cs
    elapsed=$((cs - start))
    printf '<<<execution_status>>>\ninitiation_status="ok"\n'
    printf 'duration=%s termination_type=%s termination_id=%s corefile=no\n' \
        "$((elapsed / 100))" "$how" "$rc"
    printf 'cutime=0 cstime=0\nlkft_elapsed=%d.%02d\n<<<test_end>>>\n' \
        "$((elapsed / 100))" "$((elapsed % 100))"
done <"$plan"
if [ "$failed" -eq 0 ]; then
    echo "INFO: ltp-pan reported all tests PASS"
else
    echo "INFO: ltp-pan reported some tests FAIL"
fi
exit "$failed"
