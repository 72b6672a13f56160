# perf: test-definitions' perf test (record, report, stat), then `perf test -v`.
# PERF_TEST_ARGS: arguments to `perf test`, e.g. `-s 17,81` to skip tests (default: all).
cd /tmp || exit 1
# which perf this is: Debian's linux-perf, or a kernel build's (libelf and the other
# optional libraries OFF, issue 18)
perf version --build-options
perf record -e cycles -o perf-lava-test.data ls -a > perf-record.log 2>&1
cat perf-record.log
samples=$(grep -ao "[0-9]\+[ ]\+samples" perf-record.log | cut -f 1 -d ' ')
if [ "${samples:-0}" -gt 1 ]; then
    lkft_case perf_record_test pass
else
    lkft_case perf_record_test fail "perf record took ${samples:-no} samples"
fi
perf report -i perf-lava-test.data > perf-report.log 2>&1
head -n 40 perf-report.log
lines=$(grep -c -e "^[ ]\+[0-9]\+.[0-9]\+%" perf-report.log)
if [ "$lines" -gt 1 ]; then
    lkft_case perf_report_test pass
else
    lkft_case perf_report_test fail "perf report showed $lines sample lines"
fi
perf stat -e cycles ls -a > perf-stat.log 2>&1
cat perf-stat.log
cycles=$(grep -o "[0-9,]\+[ ]\+cycles" perf-stat.log | sed 's/,//g' | cut -f 1 -d ' ')
if [ -z "$cycles" ]; then
    lkft_case perf_stat_test skip "perf stat counted no cycles (no cycles event)"
elif [ "$cycles" -gt 1 ]; then
    lkft_case perf_stat_test pass
else
    lkft_case perf_stat_test fail "perf stat counted $cycles cycles"
fi
rm -f perf-record.log perf-report.log perf-stat.log perf-lava-test.data
# shellcheck disable=SC2086  # PERF_TEST_ARGS holds several arguments
perf test -v $PERF_TEST_ARGS 2>&1 | cat
lkft_case perf_test pass
