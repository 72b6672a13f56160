# rcutorture: test-definitions' rcutorture test, once per torture type.
# TORTURE_TIME: seconds each type runs (default 60); TORTURE_TYPES: default rcu.
lkft_need_module rcutorture CONFIG_RCU_TORTURE_TEST=m
for type in ${TORTURE_TYPES:-rcu}; do
    suffix="-$type"
    [ "$type" = rcu ] && suffix=""
    echo "LKFT-RCUTORTURE: $type"
    dmesg -c > /dev/null
    grep -q "^rcutorture " /proc/modules && rmmod rcutorture
    if ! modprobe rcutorture "torture_type=$type"; then
        lkft_case "modprobe-rcutorture$suffix" fail "modprobe rcutorture torture_type=$type failed"
        for name in rcutorture-start rmmod-rcutorture rcutorture-end; do
            lkft_case "$name$suffix" skip "rcutorture did not load"
        done
        continue
    fi
    lkft_case "modprobe-rcutorture$suffix" pass
    sleep "${TORTURE_TIME:-60}"
    if rmmod rcutorture; then
        lkft_case "rmmod-rcutorture$suffix" pass
    else
        lkft_case "rmmod-rcutorture$suffix" fail "rmmod rcutorture failed"
    fi
    dmesg | grep -e "-torture"
done
