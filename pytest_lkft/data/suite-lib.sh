# pytest-lkft's suite scripts start with these helpers; the host parses what they print
# (pytest_lkft/parsers/scripted.py). POSIX sh: busybox, dash or bash.

# The suite cannot run here: say why, once, and stop.
lkft_skip() {
    echo "LKFT-SKIP: $*"
    exit 0
}

# A check of the script: lkft_case NAME pass|fail|skip [REASON]
lkft_case() {
    echo "LKFT-CASE: $*"
}

# y, m or n for a kernel option; ? when the kernel's config cannot be read. The config
# is $KCONFIG_PATH (as LTP reads it), /proc/config.gz or /boot/config-<release>.
lkft_config() {
    if [ -n "$KCONFIG_PATH" ] && [ -r "$KCONFIG_PATH" ]; then
        cat "$KCONFIG_PATH"
    elif [ -r /proc/config.gz ]; then
        zcat /proc/config.gz
    elif [ -r "/boot/config-$(uname -r)" ]; then
        cat "/boot/config-$(uname -r)"
    else
        echo "LKFT_UNKNOWN=?"
    fi | sed -n -e "s/^$1=\(.*\)/\1/p" -e "s/^LKFT_UNKNOWN=//p" | head -n 1
}

# Skip the suite unless the kernel has each option (=y or =m, or its config is unknown).
lkft_need_config() {
    for option in "$@"; do
        case "$(lkft_config "$option")" in
            y | m | "?") ;;
            *) lkft_skip "the kernel lacks $option (not set in its config)" ;;
        esac
    done
}

# Skip the suite unless the rootfs has each command.
lkft_need_commands() {
    for command in "$@"; do
        command -v "$command" > /dev/null 2>&1 ||
            lkft_skip "$command is not on the rootfs: pass --lkft-rootfs=debian"
    done
}

# Skip the suite unless the kernel has module $1, as a module or built in (for a kernel
# whose config is not on the device).
lkft_need_module() {
    grep -q "/$1\.ko" "/lib/modules/$(uname -r)/modules.dep" 2> /dev/null ||
        grep -q "/$1\.ko" "/lib/modules/$(uname -r)/modules.builtin" 2> /dev/null ||
        lkft_skip "the kernel has no $1 module ($2)"
}
