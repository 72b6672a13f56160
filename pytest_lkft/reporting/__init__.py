"""Reporting: results to the embedded store or a real SQUAD, JUnit, the end-of-run summary.

Contract between the items (any suite, any device) and the reporters. Every item that is
an LKFT result carries these `user_properties` on its reports (so JUnit gets them too):

- `("lkft.suite", "ltp-syscalls")`   the SQUAD suite name
- `("lkft.test", "abort01")`         the test name inside the suite
- `("lkft.device", "qemu-arm64")`    the device name (SQUAD environment by default)
- `("lkft.result", "xfail")`         optional: the LKFT result when it differs from
                                     the pytest outcome (pytest has no "error" on call)
- `("lkft.metric.<name>", "<value> <unit>")`  optional metrics, e.g.
                                     ("lkft.metric.boot-time", "2.31 s")
- `("lkft.meta.<key>", "<value>")`  run metadata, e.g. kernel, kernel_version, arch, rootfs,
                                     qemu_version, toolchain; the same for every case of a device
- `("lkft.console_log", "/abs/path/console.log")`  the device run's console log
"""
