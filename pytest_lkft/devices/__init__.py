"""Devices: what a suite boots and runs commands on (QEMU here, labgrid boards later)."""
