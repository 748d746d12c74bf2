package worker

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/poolctl/poolctl/internal/workerenv"
	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/redisconn"
	"github.com/poolctl/poolctl/spec"
)

// ErrUsage marks a command-line mistake in Command's arguments.
var ErrUsage = errors.New("usage error")

// bookkeepingTimeout bounds each of a worker's Redis calls but its blocking
// waits.
const bookkeepingTimeout = time.Second

// Command runs one built-in worker from command-line arguments (the
// `poolctl work` sub-command and the lean poolctl-worker binary): it
// reads its settings from flags and the environment the master sets
// (package workerenv), obeys Resque's signals, and returns when the
// worker stops. It is meant to own its process: it makes the process a
// child subreaper, and every child left when a job ends or the worker
// stops is taken for a job's leftover and killed.
func Command(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	// Catch Resque's signals before anything else: a QUIT or TERM that
	// arrives while the worker is still connecting must be obeyed once it
	// runs, not kill it with a Go stack dump. When the master dies our
	// stdout pipe breaks; write errors must not kill the worker before it
	// has requeued its job.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGCONT)
	defer signal.Stop(sigs)
	signal.Ignore(syscall.SIGPIPE)
	// Say so at once: the master sends USR2 (pause) to a starting worker
	// only from this line on, so none is lost.
	var ready io.WriteCloser // nil, not a nil *os.File, when there is none
	if pipe := takeReadyPipe(); pipe != nil {
		defer pipe.Close()
		tellMaster(pipe, workerenv.ReadySignals)
		ready = pipe
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	queues := fs.String("queues", firstEnv("QUEUES", "QUEUE"), "comma-separated queue `LIST` in priority order (default: $QUEUES, $QUEUE)")
	// Defaults are read after parsing: a default shown by -h must never
	// print a password from the environment.
	redisURL := fs.String("redis", "", "Redis `URL` (default: $REDIS_URL, then "+redisconn.DefaultURL+")")
	namespace := fs.String("namespace", os.Getenv(workerenv.Namespace), "Redis key namespace (default: $POOLCTL_NAMESPACE, then resque:)")
	configPath := fs.String("c", "", "config `FILE` to take jobs:, job_timeout:, redis: and namespace: from when run alone")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if *queues == "" {
		return fmt.Errorf("%w: work needs --queues LIST (or $QUEUES)", ErrUsage)
	}
	if *redisURL == "" {
		*redisURL = os.Getenv(workerenv.RedisURL)
	}
	names := strings.Split(*queues, ",")
	for i, q := range names {
		names[i] = strings.TrimSpace(q)
		if err := spec.ValidateQueueName(names[i]); err != nil {
			return fmt.Errorf("%w: --queues: %v", ErrUsage, err)
		}
	}
	jobs, timeout, err := jobSettings()
	if err != nil {
		return err
	}
	if *configPath != "" {
		cfg, err := spec.LoadConfig(*configPath, spec.EnvFromEnvironment(os.Getenv))
		if err != nil {
			return err
		}
		jobs, timeout = cfg.Jobs, cfg.JobTimeout
		if *redisURL == "" {
			*redisURL = cfg.Redis
		}
		if *namespace == "" {
			*namespace = cfg.Namespace
		}
	}
	if *redisURL == "" {
		*redisURL = redisconn.DefaultURL
	}
	host, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("host name: %w", err)
	}
	id := queue.WorkerID(host, os.Getpid(), names)
	// Bookkeeping calls take milliseconds; a 1 s bound keeps a stalled
	// Redis from holding a worker told to stop (DESIGN: signals take
	// effect at once).
	// Lean: a pool starts workers by the hundred, and each new connection
	// costs two round trips instead of four, and the worker one connection
	// instead of three, before its first reserve (docs/benchmarks.md).
	rdb, err := redisconn.Open(*redisURL, redisconn.Options{Name: "poolctl-worker:" + id, PoolSize: 2, NoRetry: true,
		ReadTimeout: bookkeepingTimeout, DialTimeout: bookkeepingTimeout, Lean: true})
	if err != nil {
		return err
	}
	defer rdb.Close()
	blocking, err := redisconn.Open(*redisURL, redisconn.Options{Name: "poolctl-worker-wait:" + id, PoolSize: 1, NoRetry: true,
		ReadTimeout: DefaultBlockTimeout + 5*time.Second, DialTimeout: bookkeepingTimeout, Lean: true})
	if err != nil {
		return err
	}
	defer blocking.Close()

	// Whatever a job starts must end with the job and with the worker:
	// adopt the jobs' orphans (double-forked daemons) so that they can be
	// found and ended after each job and when the worker stops.
	if err := becomeSubreaper(); err != nil {
		return err
	}
	defer func() {
		if n, err := reapLeftovers(); err != nil {
			fmt.Fprintf(stderr, "%s: ending what jobs left behind: %v\n", name, err)
		} else if n > 0 {
			fmt.Fprintf(stderr, "%s: ended %d process(es) left behind by jobs\n", name, n)
		}
	}()

	masterPID, _ := strconv.Atoi(os.Getenv(workerenv.MasterPID))
	var beat time.Duration
	if raw := os.Getenv(workerenv.HeartbeatInterval); raw != "" {
		if beat, err = time.ParseDuration(raw); err != nil || beat <= 0 {
			return fmt.Errorf("$%s: want a positive duration such as 10s, got %q", workerenv.HeartbeatInterval, raw)
		}
	}
	var maxJobs int
	if raw := os.Getenv(workerenv.MaxJobs); raw != "" {
		if maxJobs, err = strconv.Atoi(raw); err != nil || maxJobs < 0 {
			return fmt.Errorf("$%s: want a job count (0 = no limit), got %q", workerenv.MaxJobs, raw)
		}
	}
	var replyTTL time.Duration
	if raw := os.Getenv(workerenv.ReplyTTL); raw != "" {
		if replyTTL, err = time.ParseDuration(raw); err != nil || replyTTL <= 0 {
			return fmt.Errorf("$%s: want a positive duration such as 1h, got %q", workerenv.ReplyTTL, raw)
		}
	}
	ns, _ := redisconn.EffectiveNamespace(*redisURL, *namespace) // as the master decides it
	w := New(queue.New(rdb, ns), blocking, Config{
		ReplyTTL:          replyTTL,
		MaxJobs:           maxJobs,
		Queues:            names,
		Jobs:              jobs,
		JobTimeout:        timeout,
		Host:              host,
		MasterPID:         masterPID,
		Stdout:            stdout,
		Stderr:            stderr,
		HeartbeatInterval: beat,
		Ready:             ready,
	})
	obey := func(sig os.Signal) {
		switch sig {
		case syscall.SIGQUIT:
			w.Quit()
		case syscall.SIGTERM, syscall.SIGINT:
			w.Terminate()
		case syscall.SIGUSR1:
			w.KillJob()
		case syscall.SIGUSR2:
			w.Pause()
		case syscall.SIGCONT:
			w.Resume()
		}
	}
	// Signals that came while the worker was connecting act before its
	// first reserve: a pause sent then holds from the first job on.
	for pending := true; pending; {
		select {
		case sig := <-sigs:
			obey(sig)
		default:
			pending = false
		}
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-done:
				return
			case sig := <-sigs:
				obey(sig)
			}
		}
	}()
	return w.Run(ctx)
}

// jobSettings reads the job table and timeout the master passes in the
// environment.
func jobSettings() (map[string][]string, time.Duration, error) {
	var jobs map[string][]string
	if raw := os.Getenv(workerenv.Jobs); raw != "" && raw != "null" {
		if err := json.Unmarshal([]byte(raw), &jobs); err != nil {
			return nil, 0, fmt.Errorf("$%s is not a JSON object of argv lists: %w", workerenv.Jobs, err)
		}
	}
	var timeout time.Duration
	if raw := os.Getenv(workerenv.JobTimeout); raw != "" {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return nil, 0, fmt.Errorf("$%s: %w", workerenv.JobTimeout, err)
		}
		timeout = d
	}
	return jobs, timeout, nil
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}
