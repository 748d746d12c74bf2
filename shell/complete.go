package shell

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	prompt "github.com/c-bata/go-prompt"
	"github.com/poolctl/poolctl/queue"
)

// queueNameCache holds the queue names last read from Redis, for
// completion, which runs on every key press and must never wait for the
// network: they are refreshed in the background at most every 10 s. Its
// methods are safe for concurrent use.
type queueNameCache struct {
	mu         sync.Mutex
	seen       []string
	at         time.Time
	refreshing bool
}

// names returns the cached names and, when they are stale, starts a
// refresh from the Redis that source names (called on the caller's
// goroutine; the refresh uses a client of its own, so it never touches
// state that commands change).
func (c *queueNameCache) names(source func() (url, ns string)) []string {
	c.mu.Lock()
	names := c.seen
	stale := !c.refreshing && time.Since(c.at) > 10*time.Second
	if stale {
		c.refreshing = true
	}
	c.mu.Unlock()
	if stale {
		url, ns := source()
		go c.refresh(url, ns)
	}
	return names
}

func (c *queueNameCache) refresh(url, ns string) {
	var got []string
	if url != "" {
		if rdb, err := openRedis(url, "poolctl-shell-complete", 1); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), summaryTimeout)
			got, _ = queue.New(rdb, ns).QueueNames(ctx)
			cancel()
			rdb.Close()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if got != nil {
		c.seen = got
	}
	c.at = time.Now()
	c.refreshing = false
}

// queueNames lists queue names for completion: the configuration's, plus
// those Redis had at the last refresh.
func (s *Session) queueNames() []string {
	seen := map[string]bool{}
	var names []string
	add := func(n string) {
		if n != "" && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	if s.cfg != nil {
		for _, e := range s.cfg.Workers {
			for _, q := range e.QueueNames() {
				add(q)
			}
		}
	}
	for _, q := range s.queues.names(func() (string, string) { return s.redisURL(), s.namespace() }) {
		add(q)
	}
	return names
}

// complete offers command names for the first word, then what the command
// takes: queue names (from the configuration and Redis), signal names,
// command names or pool names.
func (s *Session) complete(d prompt.Document) []prompt.Suggest {
	before := d.TextBeforeCursor()
	if strings.TrimSpace(before) == "" {
		return nil
	}
	word := d.GetWordBeforeCursor()
	fields := strings.Fields(before)
	if len(fields) == 1 && !strings.HasSuffix(before, " ") {
		return prompt.FilterHasPrefix(commandSuggestions(), word, false)
	}
	c := Lookup(fields[0])
	if c == nil {
		return nil
	}
	var out []prompt.Suggest
	switch c.Arg {
	case argCommand:
		out = commandSuggestions()
	case argSignal:
		for _, n := range signalNames() {
			out = append(out, prompt.Suggest{Text: n})
		}
	case argStatusFlags:
		out = []prompt.Suggest{{Text: "--json", Description: "one JSON object"}}
	case argTune:
		out = tuneSuggestions(s, fields, before)
	case argFleet:
		out = fleetSuggestions(s, fields[1:], strings.HasSuffix(before, " "))
	case argRestart:
		out = s.restartSuggestions()
	case argAutoscale:
		out = s.autoscaleSuggestions(fields[1:], strings.HasSuffix(before, " "))
	case argPool:
		for _, p := range runningPools() {
			out = append(out, prompt.Suggest{Text: p.Name, Description: p.Spec})
		}
	case argQueueNames:
		out = append(out, prompt.Suggest{Text: "--json", Description: "the summary as one JSON object"},
			prompt.Suggest{Text: "--timeout", Description: "give up after a duration"})
		for _, q := range s.queueNames() {
			out = append(out, prompt.Suggest{Text: q, Description: "queue"})
		}
	case argQueues:
		// Complete the last name of a queue list: "foo,ba" -> "foo,bar=".
		head := ""
		if i := strings.LastIndexByte(word, ','); i >= 0 {
			head = word[:i+1]
		}
		if strings.Contains(word, "=") {
			return nil
		}
		for _, q := range s.queueNames() {
			out = append(out, prompt.Suggest{Text: head + q + "=", Description: "queue"})
		}
	}
	return prompt.FilterHasPrefix(out, word, false)
}

func commandSuggestions() []prompt.Suggest {
	var out []prompt.Suggest
	for _, c := range table {
		out = append(out, prompt.Suggest{Text: c.Name, Description: c.Summary})
		for _, a := range c.Aliases {
			out = append(out, prompt.Suggest{Text: a, Description: c.Summary})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Text < out[j].Text })
	return out
}
