// Package spec parses, validates, merges and formats poolctl worker specs
// and pool configuration files.
//
// # Spec strings
//
// A spec string lists queue lists and their worker counts, in the style of
// resque-pool's WORKERS variable:
//
//	foo=2:bar=4:baz,quux=5:*=1
//
// Entries are separated by ':'; each entry is QUEUELIST=COUNT, and a queue
// list is a comma-separated list of queue names, in priority order.
// Whitespace (space, tab, CR, LF, VT, FF) around any token is ignored.
// Counts are decimal integers from 0 to [MaxCount]; a count of 0 means
// "remove this queue list" when the spec is used as an update (see
// [Spec.Merge]). The same queue list may not appear twice in one spec, and a
// queue name may not repeat within one list.
//
// # Queue names
//
// A queue name is 1 to 512 bytes of printable UTF-8, as Resque and Ruby
// producers use them ("reports/daily", "mail:high", "日本語"), except:
//
//   - whitespace, ',' (separates the names of a list) and '=' (separates
//     the count) anywhere;
//   - ':' at either end: entries are separated by ':', and an entry ends
//     at the first ':' after its '=', so "mail:high=1:low=2" is two entries.
//
// A name containing one of * ? [ ] { } is a glob pattern ("*", "high_*"),
// expanded by the worker as Resque does.
//
// # Errors
//
// Errors in spec strings are reported as [*Error] values naming the
// offending entry, its 1-based index and the 1-based byte column where it
// starts, for example:
//
//	spec: entry 2 "bar=x" (column 7): count "x" is not a non-negative integer
//
// Errors in configuration files are reported as [*ConfigError] values
// prefixed with the file name and line, for example:
//
//	pool.yml:7: unknown key "wokers"
//
// # Configuration files
//
// [ParseConfig] accepts two YAML layouts. The poolctl layout has a workers
// mapping and optional settings:
//
//	workers:
//	  foo: 2
//	  "bar,baz": 1
//	command: [php, worker.php, "--queues={queues}"]
//	jobs:
//	  Mailer: [bin/send-mail]
//	redis: redis://localhost:6379/0
//	namespace: "resque:"
//	term_timeout: 10s
//	start_secs: 1s
//	start_retries: 5
//	backoff_max: 30s
//	job_timeout: 2m
//	environments:
//	  production:
//	    workers:
//	      foo: 8
//
// The resque-pool layout is a flat mapping of queue list to count, with
// optional environment sections whose counts override the root ones:
//
//	foo: 1
//	bar: 2
//	production:
//	  foo: 3
//	  bar: 0
//
// A document uses the resque-pool layout when it has none of the poolctl
// keys (a "jobs" key with an integer value counts as a queue named jobs) and
// every top-level value is an integer, a mapping or null. A null value for a
// poolctl setting means "not set" (the default applies).
package spec
