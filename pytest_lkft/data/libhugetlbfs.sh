# libhugetlbfs: test-definitions' libhugetlbfs test: huge pages reserved, a hugetlbfs
# mount, then the test suite's run_tests.py.
# LIBHUGETLBFS_PATH: the built tests (default /opt/libhugetlbfs); WORD_SIZE: 32 or 64
# (default 64); LIBHUGETLBFS_TESTS: run_tests.py's test sets (default: func and stress);
# HUGEPAGES: pages to reserve (default 200).
path=${LIBHUGETLBFS_PATH:-/opt/libhugetlbfs}
grep -q hugetlbfs /proc/filesystems || lkft_skip "the kernel has no hugetlbfs"
[ -x "$path/tests/run_tests.py" ] ||
    lkft_skip "no libhugetlbfs tests at $path (Debian packages none): pass --lkft-libhugetlbfs SOURCE"
echo "${HUGEPAGES:-200}" > /proc/sys/vm/nr_hugepages
mkdir -p /mnt/hugetlb
umount /mnt/hugetlb 2> /dev/null
mount -t hugetlbfs hugetlbfs /mnt/hugetlb || lkft_skip "cannot mount hugetlbfs"
echo "huge pages: $(cat /proc/sys/vm/nr_hugepages)"
sets=""
for set in $LIBHUGETLBFS_TESTS; do sets="$sets -t $set"; done
cd "$path/tests" || exit 1
# shellcheck disable=SC2086  # one -t per test set
./run_tests.py -b "${WORD_SIZE:-64}" $sets 2>&1
status=$?
umount /mnt/hugetlb
exit "$status"
