package shell

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/poolctl/poolctl/pool/poolfs"
)

// PoolInfo is one running pool, as listed by poolctl list.
type PoolInfo struct {
	Name    string `json:"name"`
	PID     int    `json:"pid"`
	Spec    string `json:"spec"`
	Workers int    `json:"workers"`
	Status  string `json:"status"`
	Log     string `json:"log,omitempty"`
}

// runningPools describes the pools whose master runs now.
func runningPools() []PoolInfo {
	pools, _ := poolfs.Running(poolfs.BaseDir())
	var out []PoolInfo
	for _, p := range pools {
		info := PoolInfo{Name: p.Name(), Status: poolfs.MasterRunning}
		if st, _, err := p.State(); err == nil {
			info.PID, info.Spec, info.Workers, info.Log = st.PID, st.Spec, len(st.Workers), st.LogPath
			if st.Status != "" {
				info.Status = st.Status
			}
		}
		out = append(out, info)
	}
	return out
}

// List prints the pools running on this host (poolctl list).
func List(w io.Writer, asJSON bool) error {
	pools := runningPools()
	if asJSON {
		if pools == nil {
			pools = []PoolInfo{}
		}
		b, err := json.Marshal(pools)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	if len(pools) == 0 {
		_, err := fmt.Fprintln(w, "no pools are running")
		return err
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPID\tSTATUS\tWORKERS\tSPEC")
	for _, p := range pools {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\n", p.Name, p.PID, p.Status, p.Workers, orNone(p.Spec))
	}
	return tw.Flush()
}

// DefaultAttachName picks the pool to attach to when none is named: the
// only running one.
func DefaultAttachName() (string, error) {
	pools := runningPools()
	switch len(pools) {
	case 0:
		return "", errors.New("no pool is running on this host")
	case 1:
		return pools[0].Name, nil
	default:
		names := ""
		for i, p := range pools {
			if i > 0 {
				names += ", "
			}
			names += p.Name
		}
		return "", fmt.Errorf("several pools are running (%s); name one: poolctl attach NAME", names)
	}
}
