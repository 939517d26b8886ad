// Package sysinfo reads facts about the machine and its processes from the kernel.
package sysinfo

import (
	"bytes"
	"os"

	"golang.org/x/sys/unix"
)

// Hostname is the machine's host name, or "" if unknown.
func Hostname() string {
	name, _ := os.Hostname()
	return name
}

// Kernel is the running kernel's release (uname -r).
func Kernel() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return string(bytes.TrimRight(u.Release[:], "\x00"))
}
