package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/redisconn"
	"github.com/poolctl/poolctl/spec"
	"github.com/poolctl/poolctl/worker"
)

// redisFlags are the connection flags of the client sub-commands.
type redisFlags struct {
	url       *string
	namespace *string
	name      *string
}

func addRedisFlags(fs *flag.FlagSet) redisFlags {
	return redisFlags{
		url:       fs.String("redis", "", "Redis `URL` (default: the running pool's, then $REDIS_URL, then "+redisconn.DefaultURL+")"),
		namespace: fs.String("namespace", "", "Redis key namespace (default: the pool's, else resque:)"),
		name:      fs.String("name", "", "pool whose Redis to use when --redis is not given (default: the current directory's name, else the only pool running)"),
	}
}

// open connects to the Redis the shell would use for the named pool
// (poolfs.Pool.RedisFor: --redis, the pool's running master's, $REDIS_URL),
// else to the default URL. When none of --redis, --name and $REDIS_URL is
// given and no pool of the default name runs, the pool is the only one
// running (said on stderr); several running are a usage error. The
// namespace is --namespace, else the pool's when its master's Redis is
// used, hash-tagged on a Cluster (redisconn.EffectiveNamespace).
func (f redisFlags) open(stderr io.Writer) (*queue.Client, func(), error) {
	ns, name := *f.namespace, *f.name
	if name == "" {
		name = poolfs.DefaultPoolName()
	}
	p := poolfs.Open(name)
	env := os.Getenv("REDIS_URL")
	if *f.url == "" && *f.name == "" && env == "" && !p.Running() {
		only, err := onlyRunningPool(p, stderr)
		if err != nil {
			return nil, nil, err
		}
		p, name = only, only.Name()
	}
	url, fromPool := p.RedisFor(*f.url, env, "")
	if fromPool && ns == "" {
		if st, err := poolfs.ReadState(p.Paths.State); err == nil {
			ns = st.Namespace
		}
	}
	if url == "" && (*f.url == poolfs.EmbeddedRedis || env == poolfs.EmbeddedRedis) {
		return nil, nil, fmt.Errorf("pool %s is not running: its embedded Redis exists only while its master runs", name)
	}
	if url == "" {
		url = redisconn.DefaultURL
	}
	rdb, err := redisconn.Open(url, redisconn.Options{Name: "poolctl-client", PoolSize: 2})
	if err != nil {
		return nil, nil, err
	}
	// As the master decides it: hash-tagged on a Cluster.
	ns, _ = redisconn.EffectiveNamespace(url, ns)
	return queue.New(rdb, ns), func() { rdb.Close() }, nil
}

// onlyRunningPool is the pool the client commands use when the default
// one, def, does not run: the only pool running on this host (said on
// stderr), else def when none runs. Several running are a usage error
// naming them.
func onlyRunningPool(def poolfs.Pool, stderr io.Writer) (poolfs.Pool, error) {
	pools, err := poolfs.Running(poolfs.BaseDir())
	if err != nil {
		return def, err
	}
	switch len(pools) {
	case 0:
		return def, nil
	case 1:
		fmt.Fprintf(stderr, "poolctl: using pool %s, the only one running\n", pools[0].Name())
		return pools[0], nil
	}
	names := make([]string, len(pools))
	for i, p := range pools {
		names[i] = p.Name()
	}
	return def, fmt.Errorf("%w: no pool %s is running, and several pools are running (%s): name one with --name, or give --redis",
		errUsage, def.Name(), strings.Join(names, ", "))
}

func runEnqueue(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("enqueue", stderr)
	rf := addRedisFlags(fs)
	n := fs.Int("n", 1, "push `COUNT` copies (an argument {i} becomes the copy's index, 0-based)")
	quiet := fs.Bool("q", false, "print nothing on success")
	wait := fs.Bool("wait", false, "wait for the jobs' status replies, print them as they come, and exit 0 when all completed, 1 when any failed, 2 at the timeout")
	timeout := fs.Duration("timeout", 0, "with --wait, stop waiting after `D` (exit status 2; the jobs may still run); 0 = no limit")
	asJSON := fs.Bool("json", false, "with --wait, print the replies as JSON lines, as the workers sent them")
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintln(out, "usage: poolctl enqueue [flags] QUEUE CLASS [ARG...] [-- ARG...]")
		fmt.Fprintln(out, "       poolctl enqueue --wait [--timeout D] [--json] [flags] QUEUE CLASS [ARG...]")
		fmt.Fprintln(out, "Arguments are parsed as JSON where they parse, else kept as strings; {i} is the copy's index.")
		fmt.Fprintln(out, "Flags may also follow the arguments; everything after -- is an argument.")
		fmt.Fprintln(out, "Each payload carries \"enqueued_at\" (Unix epoch seconds, as Sidekiq writes it; Resque ignores it),")
		fmt.Fprintln(out, "from which workers measure how long jobs wait in their queue.")
		fmt.Fprintln(out, "With --wait, each payload also carries \"reply_to\" and \"correlation_id\" (docs/messages.md),")
		fmt.Fprintln(out, "the replies are printed on stdout, and the reply list is deleted at the end.")
		fs.PrintDefaults()
		fmt.Fprintln(out, "\nBuilt-in job classes (any other class must be named under jobs: in the pool's config):")
		fmt.Fprintf(out, "  %-16s does nothing\n", worker.ClassNoop)
		fmt.Fprintf(out, "  %-16s [ms] sleeps\n", worker.ClassSleep)
		fmt.Fprintf(out, "  %-16s [message] fails\n", worker.ClassFail)
		fmt.Fprintf(out, "  %-16s [ms] burns CPU\n", worker.ClassCpu)
	}
	pos, err := parseFlagsAnywhere(fs, args)
	if err != nil {
		if errors.Is(err, errUsage) {
			return fmt.Errorf("%w (flags may come anywhere; put job arguments that start with \"-\" after --)", err)
		}
		return err
	}
	if len(pos) < 2 {
		return fmt.Errorf("%w: enqueue needs QUEUE CLASS [ARG...]", errUsage)
	}
	q, class := pos[0], pos[1]
	if err := spec.ValidateQueueName(q); err != nil || strings.Contains(q, "*") {
		return fmt.Errorf("%w: queue %q: not a valid queue name", errUsage, q)
	}
	if *n < 1 {
		return fmt.Errorf("%w: -n must be at least 1", errUsage)
	}
	if !*wait && (*asJSON || *timeout != 0) {
		return fmt.Errorf("%w: --json and --timeout apply to --wait only", errUsage)
	}
	if *timeout < 0 {
		return fmt.Errorf("%w: --timeout must not be negative, got %s", errUsage, *timeout)
	}
	payloads, err := buildPayloads(class, pos[2:], *n, time.Now())
	if err != nil {
		return err
	}
	var w *replyWait
	if *wait {
		if w, err = newReplyWait(payloads); err != nil {
			return err
		}
	}
	c, closeFn, err := rf.open(stderr)
	if err != nil {
		return err
	}
	defer closeFn()
	start := time.Now()
	if err := c.Enqueue(ctx, q, payloads...); err != nil {
		return err
	}
	if w != nil {
		// stdout is for the replies alone.
		if !*quiet {
			fmt.Fprintf(stderr, "enqueued %d job(s) of %s on %s; waiting for their replies on %s\n", *n, class, q, w.replyTo)
		}
		return w.await(ctx, c, *timeout, *asJSON, stdout)
	}
	if !*quiet {
		fmt.Fprintf(stdout, "enqueued %d job(s) of %s on %s in %s\n", *n, class, q, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// parseFlagsAnywhere parses flags before, between and after positional
// arguments (enqueue q Class a -q), up to "--", after which everything is
// positional. A negative number ("-5", "-2.5") is a positional argument,
// not a flag. It returns the positional arguments in order.
func parseFlagsAnywhere(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		if _, err := strconv.ParseFloat(args[0], 64); err == nil {
			pos, args = append(pos, args[0]), args[1:]
			continue
		}
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	return pos, nil
}

// buildPayloads parses each argument as JSON where it parses, else keeps
// it as a string; "{i}" becomes the copy's index. Every payload is stamped
// with enqueued_at = at (Sidekiq's key, which Resque ignores), so workers
// can measure how long jobs wait in their queue.
func buildPayloads(class string, rawArgs []string, n int, at time.Time) ([][]byte, error) {
	args := make([]any, len(rawArgs))
	indexAt := -1
	for i, a := range rawArgs {
		if a == "{i}" {
			indexAt = i
			continue
		}
		var v any
		if json.Unmarshal([]byte(a), &v) == nil {
			args[i] = json.RawMessage(a)
		} else {
			args[i] = a
		}
	}
	payloads := make([][]byte, n)
	if indexAt < 0 {
		p, err := queue.EncodePayloadAt(class, args, at)
		if err != nil {
			return nil, err
		}
		for i := range payloads {
			payloads[i] = p
		}
		return payloads, nil
	}
	for i := range payloads {
		args[indexAt] = i
		p, err := queue.EncodePayloadAt(class, args, at)
		if err != nil {
			return nil, err
		}
		payloads[i] = p
	}
	return payloads, nil
}

func runQueues(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("queues", stderr)
	rf := addRedisFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, closeFn, err := rf.open(stderr)
	if err != nil {
		return err
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := c.Summarize(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, s)
	}
	printSummary(stdout, s)
	return nil
}

// printSummary renders a queue summary as a table.
func printSummary(w io.Writer, s *queue.Summary) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tDEPTH\tWORKERS")
	on := s.WorkersOn()
	names := make([]string, 0, len(s.Queues))
	for q := range s.Queues {
		names = append(names, q)
	}
	sort.Strings(names)
	for _, q := range names {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", q, s.Queues[q], on[q])
	}
	tw.Flush()
	noun := "workers"
	if len(s.Workers) == 1 {
		noun = "worker"
	}
	fmt.Fprintf(w, "processed %d, failed %d (%d failure records), %d %s registered\n", s.Processed, s.Failed, s.FailedLen, len(s.Workers), noun)
}

func runFailed(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("failed", stderr)
	rf := addRedisFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	all := fs.Bool("all", false, "with retry: retry every failure record present now")
	remove := fs.Bool("remove", false, "with retry: remove the record (default: keep it and set retried_at, as Resque does)")
	limit := fs.Int64("limit", 50, "with list: show at most `N` records")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	action := "list"
	rest := fs.Args()
	if len(rest) > 0 {
		action, rest = rest[0], rest[1:]
	}
	// Flags may come anywhere: `failed retry --all`, `failed retry 0 --remove`.
	rest, err := parseFlagsAnywhere(fs, rest)
	if err != nil {
		return err
	}
	// Extra arguments are errors, never ignored: `failed clear 3` must not
	// clear everything.
	want := map[string]int{"list": 0, "clear": 0, "retry": 1}
	if *all {
		want["retry"] = 0
	}
	if n, ok := want[action]; ok && len(rest) > n {
		return fmt.Errorf("%w: failed %s: unexpected argument %q", errUsage, action, rest[n])
	}
	c, closeFn, err := rf.open(stderr)
	if err != nil {
		return err
	}
	defer closeFn()
	switch action {
	case "list":
		recs, err := c.FailedRecords(ctx, 0, *limit)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(stdout, recs)
		}
		for i, r := range recs {
			fmt.Fprintf(stdout, "%d\t%s\t%s\t%s: %s\t%s\n", i, r.FailedAt, r.Queue, r.Exception, r.Error, r.Payload)
		}
		return nil
	case "retry":
		mode, how := queue.RetryKeep, "record kept, marked retried"
		if *remove {
			mode, how = queue.RetryRemove, "record removed"
		}
		if *all {
			n, err := c.RetryAllFailed(ctx, mode, time.Now())
			if n > 0 || err == nil {
				fmt.Fprintf(stdout, "retried %d job(s) (%s)\n", n, strings.Replace(how, "record", "records", 1))
			}
			return err
		}
		if len(rest) != 1 {
			return fmt.Errorf("%w: failed retry needs an INDEX or --all", errUsage)
		}
		i, err := strconv.ParseInt(rest[0], 10, 64)
		if err != nil || i < 0 {
			return fmt.Errorf("%w: failed retry: index %q is not a non-negative integer", errUsage, rest[0])
		}
		if err := c.RetryFailed(ctx, i, mode, time.Now()); err != nil {
			return err
		}
		if *remove {
			how += "; later records moved down one index"
		}
		fmt.Fprintf(stdout, "retried failure %d (%s)\n", i, how)
		return nil
	case "clear":
		n, err := c.ClearFailed(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "cleared %d failure record(s)\n", n)
		return nil
	}
	return fmt.Errorf("%w: failed: unknown action %q (want list, retry or clear)", errUsage, action)
}

// writeJSON prints v as one JSON document on one line.
func writeJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}
