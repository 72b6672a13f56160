# libgpiod: the gpiod tools' tests (libgpiod 1.6's tools/gpio-tools-test.bats, in sh) as
# TAP, against simulated chips: gpio-sim (configfs), else gpio-mockup. Names are the
# bats names as test-definitions' gpiod parser makes them ("gpioget: read all lines" is
# gpioget_read_all_lines). Without either driver the tests that need chips are skips
# naming the missing options; the others still run.
SIM=/sys/kernel/config/gpio-sim
backend=""
if modprobe gpio-sim 2> /dev/null || [ -d /sys/module/gpio_sim ]; then
    grep -q " /sys/kernel/config " /proc/mounts || mount -t configfs configfs /sys/kernel/config
    [ -d "$SIM" ] && backend=sim
fi
if [ -z "$backend" ] && modinfo gpio-mockup > /dev/null 2>&1; then
    grep -q " /sys/kernel/debug " /proc/mounts || mount -t debugfs debugfs /sys/kernel/debug
    backend=mockup
fi
NO_SIM="the kernel lacks CONFIG_GPIO_SIM and CONFIG_GPIO_MOCKUP (simulated chips)"
echo "# gpiod tools: $(gpiodetect --version 2>&1 | head -n 1); simulated chips: ${backend:-none}"

# -- simulated chips: probe SIZE... [named-lines], chip N, label N, pull N LINE 0|1,
#    value N LINE, remove -------------------------------------------------------------
label() {
    echo "gpio-$backend-$(echo ABCDEFGH | cut -c "$(($1 + 1))")"
}

probe() {
    named=""
    for arg in "$@"; do [ "$arg" = named-lines ] && named=1; done
    if [ "$backend" = mockup ]; then
        ranges=""
        for arg in "$@"; do [ "$arg" = named-lines ] || ranges="$ranges-1,$arg,"; done
        modprobe gpio-mockup ${named:+gpio_mockup_named_lines} "gpio_mockup_ranges=${ranges%,}"
        return
    fi
    chip=0
    for arg in "$@"; do
        [ "$arg" = named-lines ] && continue
        dir="$SIM/lkft-$chip"
        mkdir "$dir" "$dir/bank0"
        echo "$arg" > "$dir/bank0/num_lines"
        label "$chip" > "$dir/bank0/label"
        line=0
        while [ -n "$named" ] && [ "$line" -lt "$arg" ]; do
            mkdir "$dir/bank0/line$line"
            echo "$(label "$chip")-$line" > "$dir/bank0/line$line/name"
            line=$((line + 1))
        done
        echo 1 > "$dir/live"
        chip=$((chip + 1))
    done
}

chip() {
    if [ "$backend" = mockup ]; then
        ls "/sys/devices/platform/gpio-mockup.$1/" | grep gpiochip
    else
        cat "$SIM/lkft-$1/bank0/chip_name"
    fi
}

line_file() {
    if [ "$backend" = mockup ]; then
        echo "/sys/kernel/debug/gpio-mockup/$(chip "$1")/$2"
    else
        echo "/sys/devices/platform/$(cat "$SIM/lkft-$1/dev_name")/$(chip "$1")/sim_gpio$2/$3"
    fi
}

pull() {
    if [ "$backend" = mockup ]; then
        echo "$3" > "$(line_file "$1" "$2")"
    elif [ "$3" = 1 ]; then
        echo pull-up > "$(line_file "$1" "$2" pull)"
    else
        echo pull-down > "$(line_file "$1" "$2" pull)"
    fi
}

value() {
    cat "$(line_file "$1" "$2" value)"
}

remove() {
    if [ "$backend" = mockup ]; then
        grep -q "^gpio_mockup " /proc/modules && rmmod gpio-mockup
        return 0
    fi
    for dir in "$SIM"/lkft-*; do
        [ -d "$dir" ] || continue
        echo 0 > "$dir/live"
        for line in "$dir"/bank0/line*; do [ -d "$line" ] && rmdir "$line"; done
        rmdir "$dir/bank0" "$dir"
    done
    return 0
}

# -- checks: run a tool, then look at its status and output ------------------------------
tool() {
    output=$("$@" 2>&1)
    status=$?
}

fails() {
    reason="$*"
    return 1
}

status_is() {
    [ "$status" -eq "$1" ] || fails "exit status $status, expected $1; output: $output"
}

has_line() {
    printf '%s\n' "$output" | grep -qxF -- "$1" || fails "no line '$1' in: $output"
}

lacks_line() {
    printf '%s\n' "$output" | grep -qxF -- "$1" && fails "line '$1' in: $output"
    return 0
}

matches() {
    printf '%s\n' "$output" | grep -qE -- "$1" || fails "nothing matches '$1' in: $output"
}

values_are() {  # CHIP LINE=VALUE...
    chip_number=$1
    shift
    for pair in "$@"; do
        found=$(value "$chip_number" "${pair%=*}")
        [ "$found" = "${pair#*=}" ] || fails "line ${pair%=*} is $found, expected ${pair#*=}" ||
            return 1
    done
}

# Wait (10 s at most) until a tool holds the line: it is ready for what the test does.
held() {
    tries=0
    while ! gpioinfo "$(chip "$1")" | grep -qE "^[[:space:]]+line +$2:.*\[used"; do
        tries=$((tries + 1))
        [ "$tries" -lt 200 ] || fails "line $2 of $(chip "$1") was never requested" || return 1
        sleep 0.05
    done
}

UNUSED="^[[:space:]]+line +%s:[[:space:]]+unnamed[[:space:]]+unused[[:space:]]+input[[:space:]]+active-high"

# -- the tests --------------------------------------------------------------------------
gpiodetect_list_chips() {
    probe 4 8 16
    tool gpiodetect
    status_is 0 && has_line "$(chip 0) [$(label 0)] (4 lines)" &&
        has_line "$(chip 1) [$(label 1)] (8 lines)" && has_line "$(chip 2) [$(label 2)] (16 lines)"
}

gpiodetect_invalid_args() {
    tool gpiodetect unimplemented-arg
    status_is 1
}

gpioinfo_dump_all_chips() {
    probe 4 8
    tool gpioinfo
    # shellcheck disable=SC2059
    status_is 0 && has_line "$(chip 0) - 4 lines:" && has_line "$(chip 1) - 8 lines:" &&
        matches "$(printf "$UNUSED" 0)" && matches "$(printf "$UNUSED" 7)"
}

gpioinfo_dump_one_chip() {
    probe 8 4
    tool gpioinfo "$(chip 1)"
    # shellcheck disable=SC2059
    status_is 0 && lacks_line "$(chip 0) - 8 lines:" && has_line "$(chip 1) - 4 lines:" &&
        matches "$(printf "$UNUSED" 0)" &&
        { ! printf '%s\n' "$output" | grep -qE "$(printf "$UNUSED" 7)" || fails "line 7 listed"; }
}

gpioinfo_inexistent_chip() {
    tool gpioinfo inexistent
    status_is 1
}

gpiofind_line_found() {
    probe named-lines 4 8 16
    tool gpiofind "$(label 1)-7"
    status_is 0 && [ "$output" = "$(chip 1) 7" ] || fails "gpiofind said: $output"
}

gpiofind_line_not_found() {
    probe named-lines 4 8 16
    tool gpiofind nonexistent-line
    status_is 1
}

read_all() {  # EXPECTED [OPTION]
    probe 8 8 8
    for line in 2 3 5 7; do pull 1 "$line" 1; done
    tool gpioget ${2:+"$2"} "$(chip 1)" 0 1 2 3 4 5 6 7
    status_is 0 && { [ "$output" = "$1" ] || fails "gpioget said '$output', expected '$1'"; }
}

gpioget_read_all_lines() { read_all "0 0 1 1 0 1 0 1"; }
gpioget_read_all_lines_active_low() { read_all "1 1 0 0 1 0 1 0" --active-low; }
gpioget_read_all_lines_pull_up() { read_all "1 1 1 1 1 1 1 1" --bias=pull-up; }
gpioget_read_all_lines_pull_down() { read_all "0 0 0 0 0 0 0 0" --bias=pull-down; }

gpioget_read_some_lines() {
    probe 8 8 8
    for line in 1 4 6; do pull 1 "$line" 1; done
    tool gpioget "$(chip 1)" 0 1 4 6
    status_is 0 && { [ "$output" = "0 1 1 1" ] || fails "gpioget said '$output'"; }
}

gpioget_no_arguments() {
    tool gpioget
    status_is 1 && matches "gpiochip must be specified"
}

gpioget_same_line_twice() {
    probe 8 8 8
    tool gpioget "$(chip 1)" 0 0
    # refused at the request (older kernels) or at the read (6.1: EBUSY)
    status_is 1 && matches "unable to request lines|Device or resource busy"
}

set_and_signal() {  # EXPECTED-VALUES... after an optional --active-low in $1
    probe 8 8 8
    low=""
    [ "$1" = --active-low ] && low=$1 && shift
    gpioset $low --mode=signal "$(chip 2)" 0=0 1=0 2=1 3=1 4=1 5=1 6=0 7=1 &
    pid=$!
    held 2 7 && values_are 2 "$@"
    checked=$?
    kill "$pid"
    wait "$pid"
    status=$?
    [ "$checked" -eq 0 ] && status_is 0
}

gpioset_set_lines_and_wait_for_SIGTERM() {
    set_and_signal 0=0 1=0 2=1 3=1 4=1 5=1 6=0 7=1
}

gpioset_set_lines_and_wait_for_SIGTERM_active_low() {
    set_and_signal --active-low 0=1 1=1 2=0 3=0 4=0 5=0 6=1 7=0
}

gpioset_set_some_lines_and_wait_with_mode_time() {
    probe 8 8 8
    gpioset --mode=time --sec=5 "$(chip 1)" 0=1 5=0 7=1 &
    pid=$!
    held 1 7 && values_are 1 0=1 5=0 7=1
    checked=$?
    wait "$pid"
    status=$?
    [ "$checked" -eq 0 ] && status_is 0
}

gpioset_no_arguments() {
    tool gpioset
    status_is 1 && matches "gpiochip must be specified"
}

gpioset_invalid_value() {
    probe 8 8 8
    tool gpioset "$(chip 1)" 0=3
    status_is 1 && matches "value must be 0 or 1"
}

monitor() {  # EDGE EVENT: one event on line 4 of chip 1
    probe 8 8
    [ "$1" = falling ] && pull 1 4 1
    events=/tmp/lkft-gpiomon.out
    timeout 10 gpiomon --num-events=1 "--$1-edge" "$(chip 1)" 4 > "$events" 2>&1 &
    pid=$!
    held 1 4 || { kill "$pid"; return 1; }
    if [ "$1" = rising ]; then pull 1 4 1; else pull 1 4 0; fi
    wait "$pid"
    status=$?
    output=$(cat "$events")
    status_is 0 && matches "event:[[:space:]]+$2[[:space:]]+EDGE[[:space:]]+offset:[[:space:]]+4"
}

gpiomon_single_rising_edge_event() { monitor rising RISING; }
gpiomon_single_falling_edge_event() { monitor falling FALLING; }

# -- TAP ----------------------------------------------------------------------------------
number=0
run() {  # NAME sim|- FUNCTION
    number=$((number + 1))
    if [ "$2" = sim ] && [ -z "$backend" ]; then
        echo "ok $number $1 # SKIP $NO_SIM"
        return
    fi
    reason=""
    if "$3"; then
        echo "ok $number $1"
    else
        printf '%s\n' "$reason" | sed 's/^/# /'
        echo "not ok $number $1"
    fi
    remove
}

echo "TAP version 13"
echo "1..21"
run gpiodetect_list_chips sim gpiodetect_list_chips
run gpiodetect_invalid_args - gpiodetect_invalid_args
run gpioinfo_dump_all_chips sim gpioinfo_dump_all_chips
run gpioinfo_dump_one_chip sim gpioinfo_dump_one_chip
run gpioinfo_inexistent_chip - gpioinfo_inexistent_chip
run gpiofind_line_found sim gpiofind_line_found
run gpiofind_line_not_found sim gpiofind_line_not_found
run gpioget_read_all_lines sim gpioget_read_all_lines
run gpioget_read_all_lines_active-low sim gpioget_read_all_lines_active_low
run gpioget_read_all_lines_pull-up sim gpioget_read_all_lines_pull_up
run gpioget_read_all_lines_pull-down sim gpioget_read_all_lines_pull_down
run gpioget_read_some_lines sim gpioget_read_some_lines
run gpioget_no_arguments - gpioget_no_arguments
run gpioget_same_line_twice sim gpioget_same_line_twice
run gpioset_set_lines_and_wait_for_SIGTERM sim gpioset_set_lines_and_wait_for_SIGTERM
run gpioset_set_lines_and_wait_for_SIGTERM_active-low sim gpioset_set_lines_and_wait_for_SIGTERM_active_low
run gpioset_set_some_lines_and_wait_with_-mode_time sim gpioset_set_some_lines_and_wait_with_mode_time
run gpioset_no_arguments - gpioset_no_arguments
run gpioset_invalid_value sim gpioset_invalid_value
run gpiomon_single_rising_edge_event sim gpiomon_single_rising_edge_event
run gpiomon_single_falling_edge_event sim gpiomon_single_falling_edge_event
