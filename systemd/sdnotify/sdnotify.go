// Package sdnotify implements the small part of systemd's notification
// protocol (sd_notify(3)) and service watchdog (sd_watchdog_enabled(3)) that
// nginx-shipper needs under a Type=notify unit.
//
// Every function is a no-op returning nil when NOTIFY_SOCKET is unset, so the
// daemon can call them unconditionally: outside systemd (a terminal, a test,
// a container) nothing happens. The environment is read on every call and
// never modified, so a reload can notify as well as the first start.
//
// The functions are safe for concurrent use. Each sends one datagram on a
// fresh socket; none blocks for longer than a local datagram send.
//
// The unit pairs Type=notify with ExecReload=kill -HUP, so the daemon is
// expected to call Reloading when it gets SIGHUP and Ready once the new
// configuration is in force; systemd then reports the reload as finished.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Notify sends state, one or more newline-separated VAR=VALUE assignments as
// described in sd_notify(3), to the socket named by NOTIFY_SOCKET. It returns
// nil without doing anything when NOTIFY_SOCKET is unset or empty. A name
// starting with '@' is an abstract-namespace socket.
func Notify(state string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	if name[0] != '/' && name[0] != '@' {
		return fmt.Errorf("sdnotify: NOTIFY_SOCKET %q: unsupported address (want a path or @abstract)", name)
	}
	if name[0] == '@' {
		name = "\x00" + name[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: dial NOTIFY_SOCKET: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: send %q: %w", firstLine(state), err)
	}
	return nil
}

// Ready tells systemd that start-up (or a reload) is finished: READY=1.
// Under Type=notify, systemctl start returns, and dependent units start,
// only after this.
func Ready() error { return Notify("READY=1") }

// Stopping tells systemd that the daemon is shutting down: STOPPING=1.
// Call it as soon as SIGTERM is handled, before flushing the sinks.
func Stopping() error { return Notify("STOPPING=1") }

// Reloading tells systemd that the daemon is reloading its configuration:
// RELOADING=1 together with MONOTONIC_USEC, the current CLOCK_MONOTONIC time
// in microseconds, which systemd requires to match the reload with the
// request (Type=notify-reload insists on it; Type=notify accepts it). Call
// Ready when the reload is done, whether or not the new configuration was
// accepted.
func Reloading() error {
	usec, err := monotonicUsec()
	if err != nil {
		return err
	}
	return Notify("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatUint(usec, 10))
}

// Watchdog feeds the service watchdog: WATCHDOG=1. Call it from the main
// loop, so a wedged loop stops feeding it, at least every
// WatchdogInterval()/2.
func Watchdog() error { return Notify("WATCHDOG=1") }

// ExtendTimeout asks systemd for d more time for the start, reload or stop
// in progress: EXTEND_TIMEOUT_USEC. It extends the job's timeout
// (TimeoutStartSec=, TimeoutStopSec=) only; it does not pause the watchdog,
// which must go on being fed.
func ExtendTimeout(d time.Duration) error {
	return Notify("EXTEND_TIMEOUT_USEC=" + strconv.FormatInt(d.Microseconds(), 10))
}

// Status sets the free-form status line that systemctl status shows:
// STATUS=s. Newlines in s are replaced by spaces.
func Status(s string) error {
	return Notify("STATUS=" + strings.ReplaceAll(s, "\n", " "))
}

// WatchdogInterval returns the watchdog timeout systemd set for this process
// (WatchdogSec= in the unit, passed as WATCHDOG_USEC), or 0 if the watchdog
// is not enabled for it: WATCHDOG_USEC unset, not a positive integer, or
// WATCHDOG_PID set to another process's PID. The caller should call
// Watchdog at least twice per interval.
func WatchdogInterval() time.Duration {
	usecStr := os.Getenv("WATCHDOG_USEC")
	if usecStr == "" {
		return 0
	}
	usec, err := strconv.ParseInt(usecStr, 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pidStr := os.Getenv("WATCHDOG_PID"); pidStr != "" {
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid != os.Getpid() {
			return 0
		}
	}
	return time.Duration(usec) * time.Microsecond
}

func monotonicUsec() (uint64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, fmt.Errorf("sdnotify: clock_gettime(CLOCK_MONOTONIC): %w", err)
	}
	if ts.Sec < 0 {
		return 0, errors.New("sdnotify: negative CLOCK_MONOTONIC")
	}
	return uint64(ts.Sec)*1e6 + uint64(ts.Nsec)/1e3, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
