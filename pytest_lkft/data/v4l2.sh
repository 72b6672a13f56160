# v4l2: test-definitions' v4l2-compliance test against a test driver (vivid).
# VIDEO_DRIVER: the module to load (default vivid); VIDEO_DEVICE: default /dev/video0.
driver=${VIDEO_DRIVER:-vivid}
driver=${driver%.ko}
device=${VIDEO_DEVICE:-/dev/video0}
if [ -n "$driver" ] && ! grep -q "^${driver} " /proc/modules; then
    lkft_need_module "$driver" "CONFIG_VIDEO_VIVID for vivid"
    if modprobe "$driver" no_error_inj=1; then
        lkft_case "modprobe-$driver" pass
    else
        lkft_case "modprobe-$driver" fail "modprobe $driver failed"
        exit 1
    fi
fi
tries=0
while [ ! -e "$device" ] && [ "$tries" -lt 100 ]; do sleep 0.1; tries=$((tries + 1)); done
[ -e "$device" ] || lkft_skip "no $device after loading $driver"
if v4l2-compliance -C never -v -d "$device" 2>&1; then
    lkft_case v4l2-compliance pass
else
    lkft_case v4l2-compliance fail "v4l2-compliance reported failures"
fi
