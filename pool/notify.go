package pool

import (
	"fmt"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// notifier speaks systemd's notify protocol (sd_notify) when the master
// runs under a unit with Type=notify (NOTIFY_SOCKET is set): READY=1 once
// the first reconcile has spawned, RELOADING=1 and READY=1 around a HUP,
// STOPPING=1, a STATUS= line with the live and desired counts, and
// WATCHDOG=1 pings from the event loop (so a stuck loop stops them) when
// WatchdogSec= is set. Without NOTIFY_SOCKET every call does nothing.
// coreos/go-systemd's daemon package sends the datagrams: it handles
// abstract sockets and the unset/closed cases as systemd documents.
type notifier struct {
	// watchdog is the interval between pings, 0 when no watchdog is set.
	watchdog   time.Duration
	lastStatus string
	logf       func(format string, args ...any)
	failed     bool
}

func newNotifier(logf func(string, ...any)) *notifier {
	n := &notifier{logf: logf}
	if d, err := daemon.SdWatchdogEnabled(false); err == nil && d > 0 {
		n.watchdog = d / 2 // systemd's advice: ping at half the timeout
	}
	return n
}

// send sends state; a failure is logged once.
func (n *notifier) send(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil && !n.failed {
		n.failed = true
		n.logf("warning: cannot notify systemd: %v", err)
	}
}

func (n *notifier) ready()    { n.send(daemon.SdNotifyReady) }
func (n *notifier) stopping() { n.send(daemon.SdNotifyStopping) }
func (n *notifier) ping()     { n.send(daemon.SdNotifyWatchdog) }

// reloading announces a reload; systemd (Type=notify-reload) wants the
// monotonic clock with it.
func (n *notifier) reloading() {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	n.send(fmt.Sprintf("%s\nMONOTONIC_USEC=%d", daemon.SdNotifyReloading, ts.Nano()/1000))
}

// status sends STATUS=line when it changed.
func (n *notifier) status(line string) {
	if line != n.lastStatus {
		n.lastStatus = line
		n.send("STATUS=" + line)
	}
}

// statusLine is the master's one-line status for systemctl status.
func statusLine(s *State) string {
	live, desired := 0, 0
	for _, g := range s.Groups {
		live += g.Live
		desired += g.Desired
	}
	line := fmt.Sprintf("%s: %d of %d workers live", s.Status, live, desired)
	if s.Error != "" {
		line += "; last reload failed"
	}
	return line
}
