// Package shell is poolctl's interactive shell: a REPL over one command
// table (Commands), used at a terminal through go-prompt and in scripts
// through a plain line reader.
//
// # Front ends
//
// The go-prompt front end is used only when standard input and output are
// terminals, TERM is not "dumb", /dev/tty opens and --no-prompt was not
// given. It reads each line with Prompt.Input (never Prompt.Run, which
// installs signal handlers that call os.Exit), through a console parser of
// our own whose raw mode is undone from a terminal state saved with
// golang.org/x/term before the prompt was built (go-prompt v0.2.6's own
// restore re-applies raw mode). The state is restored again after every
// line, before the command runs, and on every way out of Run, panics
// included. Each command runs under its own signal.NotifyContext, so
// Ctrl-C cancels that command (a log.tail follow, a wait) and the prompt
// comes back; at the prompt Ctrl-C clears the line and Ctrl-D on an empty
// line is exit. SIGHUP and SIGTERM make the shell leave at once and keep
// the pool running (like detach). History is kept in
// $XDG_STATE_HOME/poolctl/history (else ~/.local/state/poolctl/history),
// at most 1000 lines.
//
// Otherwise lines are read with a bufio.Scanner (at most MaxLineBytes per
// line). Blank lines and lines starting with '#' are skipped, results go to
// standard output; confirmations, progress and logs (config's new spec,
// wait's summary, the start and stop logs) and errors go to standard error,
// errors as "poolctl: line N: ERROR",
// and Run returns a *CommandsFailedError (exit status 1) if any command
// failed (at a terminal, failed commands do not change the exit status);
// a failed start or attach ends the script. The end of input is
// exit. Ctrl-C ends the script. When standard
// output goes away (a write fails with EPIPE, or the reader of the pipe
// closes it, as with "| head -1"), the script ends as at the end of input,
// the pool the shell started is stopped, and Run returns an error.
//
// # The pool
//
// The shell never owns workers. It writes the pool's configuration to the
// config file in the pool's runtime directory and starts the master as a
// child in a session of its own ("poolctl master -c FILE --name NAME --log
// LOG", with POOLCTL_SHELL_PID set and its standard output and error in
// master.out in the runtime directory), then talks to it through signals
// and the files it publishes (pid, state, log, Redis URL). exit stops the
// pool this shell started (QUIT, showing the shutdown log); a shell that
// attached to a pool leaves it running on exit. A shell that is killed
// leaves the pool running; poolctl attach NAME re-attaches. A master that
// dies while the shell does not expect it is announced at once ("master
// 8830 died: signal KILL"), at the prompt and during commands.
//
// # status --json
//
// status --json prints one JSON object (type Status) on one line:
//
//	name          string   pool name
//	state         string   running | paused | suspended | stopping | stopped
//	pid           number   the master's pid, 0 when stopped
//	started_at    string   RFC 3339, absent when stopped
//	config_path   string   config file the master reads
//	log_path      string   pool log
//	spec          string   configuration as a spec string
//	config        object   queue list -> desired count
//	overrides     string   the shell's counts on top of the -c file; absent when none
//	error         string   last reload error, absent when none
//	groups        array    {queues, desired, live, state: ok|backoff|fatal, reason, autoscale}
//	                       autoscale (autoscaled lists only) is state.json's: {mode: on|off,
//	                       min, max, target_wait_seconds, down_after_seconds, configured, reason, at}
//	workers       array    see below
//	queues        object   queue name -> depth ({} when Redis is unavailable)
//	processed     number   Resque's processed count, null when Redis is unavailable
//	failed        number   Resque's failed count, null when Redis is unavailable
//	redis         string   Redis URL, password redacted; absent when none
//	redis_error   string   why queue data is missing; absent when Redis answered
//	namespace     string   key namespace in force (the master's; hash-tagged on a Cluster); absent when no Redis
//	workers_paused_at string when USR2 paused the workers (whoever sent it); absent when not paused
//
// Each worker:
//
//	pid             number  process id
//	queues          string  queue list, e.g. "foo,bar" or "*"
//	state           string  "Waiting for foo", "Processing Archive since 12s", or the process state
//	process_state   string  starting | running | stopping
//	job             object  {class, queue, run_at, payload} or null
//	started_at      string  RFC 3339
//	uptime_seconds  number
//	restarts        number  workers of this queue list replaced so far
//	cpu_percent     number  since the previous sample, job processes included
//	rss_bytes       number  resident memory, job processes included
//	last_exit       string  how the previous worker of the list ended; absent when none
//
// Keys may be added later; none will be removed or change type.
package shell
