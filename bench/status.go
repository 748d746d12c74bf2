package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/pstree"
	"github.com/poolctl/poolctl/queue"
	"github.com/redis/go-redis/v9"
)

// status: Status `sleep` workers plus as many registrations in Redis;
// `printf 'status --json\n' | poolctl attach bench` wall time, and the
// in-process building blocks (state file + one process-tree scan +
// queue.Summarize) for comparison. Each run of the scenario takes
// z.Runs samples of each from one pool.
func status(e *env, z sizes, _ int) ([]metric, error) {
	n := z.Status
	m, _, err := e.startMaster(e.config(map[string]int{"foo": n}, []string{"foo"}, sleepCommand))
	if err != nil {
		return nil, err
	}
	defer m.stop()
	if _, _, err := m.waitWorkers(n, false, 60*time.Second); err != nil {
		return nil, err
	}
	q := queue.New(e.rdb, "")
	for i := 0; i < n; i++ {
		if err := q.Register(bg, queue.Registration{ID: queue.WorkerID("benchhost", 100000+i, []string{"foo"}), Started: time.Now()}); err != nil {
			return nil, err
		}
	}
	for _, name := range []string{"foo", "bar", "baz"} {
		_ = q.Enqueue(bg, name, noop, noop, noop)
	}
	out, err := statusInShell(e, m.runtime, n, z.Runs)
	if err != nil {
		return nil, err
	}
	for i := 0; i < z.Runs; i++ {
		// The shell, as a script would run it.
		cmd := exec.Command(e.bin, "attach", "bench")
		cmd.Env = append(os.Environ(), "POOLCTL_RUNTIME_DIR="+m.runtime, "REDIS_URL=")
		cmd.Stdin = strings.NewReader("status --json\n")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		t0 := time.Now()
		err := cmd.Run()
		el := time.Since(t0)
		var doc struct {
			Workers []json.RawMessage `json:"workers"`
		}
		parsed := false
		for _, line := range strings.Split(stdout.String(), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "{") && json.Unmarshal([]byte(line), &doc) == nil {
				parsed = true
				break
			}
		}
		switch {
		case err != nil || !parsed:
			e.logf("status: `poolctl attach` gave no status JSON (%v): %s %s", err, trim(stdout.String()), trim(stderr.String()))
		case len(doc.Workers) != n:
			e.logf("status --json listed %d workers, want %d", len(doc.Workers), n)
		default:
			out = append(out, metric{key: "status_json", value: float64(el.Microseconds()) / 1000})
		}
		if !m.alive() {
			return nil, m.failure("the master died during status")
		}
		// The building blocks, in process, with a fresh Redis connection
		// and a fresh sampler as a one-shot command would have.
		t0 = time.Now()
		st, err := poolfs.ReadState(m.paths.State)
		if err != nil {
			return nil, err
		}
		tree, err := pstree.NewSampler().Tree(context.Background(), int32(st.PID))
		if err != nil {
			return nil, err
		}
		rdb := redis.NewClient(&redis.Options{Addr: e.srv.Addr(), PoolSize: 1})
		sum, err := queue.New(rdb, st.Namespace).Summarize(bg)
		rdb.Close()
		if err != nil {
			return nil, err
		}
		if _, err := json.Marshal([]any{st, tree, sum}); err != nil {
			return nil, err
		}
		out = append(out, metric{key: "status_blocks", value: float64(time.Since(t0).Microseconds()) / 1000})
		if len(sum.Workers) != n || len(tree.Children) != n {
			return nil, fmt.Errorf("status blocks saw %d registrations and %d children, want %d", len(sum.Workers), len(tree.Children), n)
		}
	}
	return out, nil
}

// statusInShell times the command itself: one attached shell reading
// commands from a pipe; from writing "status --json" until its JSON line
// arrives. The first answer (the CPU sampler's first sight of every
// process) is a warm-up and not counted.
func statusInShell(e *env, runtime string, n, runs int) ([]metric, error) {
	cmd := exec.Command(e.bin, "attach", "bench")
	cmd.Env = append(os.Environ(), "POOLCTL_RUNTIME_DIR="+runtime, "REDIS_URL=")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	lines := bufio.NewReaderSize(stdout, 1<<20)
	var out []metric
	for i := 0; i <= runs; i++ {
		t0 := time.Now()
		if _, err := io.WriteString(stdin, "status --json\n"); err != nil {
			return nil, err
		}
		for {
			line, err := lines.ReadString('\n')
			if err != nil {
				return nil, fmt.Errorf("status in shell: %w", err)
			}
			if !strings.HasPrefix(line, "{") {
				continue
			}
			el := time.Since(t0)
			var doc struct {
				Workers []json.RawMessage `json:"workers"`
			}
			if err := json.Unmarshal([]byte(line), &doc); err != nil || len(doc.Workers) != n {
				return nil, fmt.Errorf("status in shell listed %d workers (%v), want %d", len(doc.Workers), err, n)
			}
			if i > 0 {
				out = append(out, metric{key: "status_shell", value: float64(el.Microseconds()) / 1000},
					metric{key: "status_bytes", value: float64(len(line))})
			}
			break
		}
	}
	return out, nil
}

func trim(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// enqueue: wall time of `poolctl enqueue -n N QUEUE Poolctl::Noop`.
func enqueue(e *env, z sizes, _ int) ([]metric, error) {
	cmd := exec.Command(e.bin, "enqueue", "-q", "-n", strconv.Itoa(z.Enqueue), "--redis", e.srv.URL(), "bulk", "Poolctl::Noop")
	cmd.Env = append(os.Environ(), "REDIS_URL=")
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	el := time.Since(t0)
	if err != nil {
		return nil, fmt.Errorf("poolctl enqueue: %v: %s", err, out)
	}
	if got := e.rdb.LLen(bg, "resque:queue:bulk").Val(); got != int64(z.Enqueue) {
		return nil, fmt.Errorf("enqueue: queue holds %d jobs, want %d", got, z.Enqueue)
	}
	return []metric{{key: "enqueue", value: el.Seconds()}}, nil
}
