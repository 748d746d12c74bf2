package spec

// MergeOverrides sets the entries of upd in o and returns the result,
// keeping counts of 0 (in an overrides file they remove a queue list of
// the config file under it). Entries keep o's order; new ones are
// appended. o is not modified.
func MergeOverrides(o, upd Spec) Spec {
	out := append(Spec(nil), o...)
next:
	for _, e := range upd {
		for i := range out {
			if out[i].Queues == e.Queues {
				out[i].Count = e.Count
				continue next
			}
		}
		out = append(out, e)
	}
	return out
}
