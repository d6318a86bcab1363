package nodes

import (
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"github.com/flaxlb/flax/api/dataplane/v1/rpc"
	"github.com/flaxlb/flax/controllers/deliver"
	"github.com/flaxlb/flax/controllers/internal/clip"
)

// ResultAnnotation holds a node's dataplane result, as JSON, on its Lease.
const ResultAnnotation = "flaxlb.io/dataplane-result"

// maxReportReason bounds the rejection reason and bind errors kept in a Lease.
const maxReportReason = 512

// report is the compact JSON summary of a deliver.Result in a node Lease.
// Configs ("namespace/name" to config hash) is written even when empty: a report
// without it comes from a controller that does not report config hashes.
type report struct {
	Version   uint64            `json:"version,omitempty"`
	Hash      string            `json:"hash,omitempty"`
	Connected bool              `json:"connected"`
	Synced    bool              `json:"synced"`
	Rejection *reportRejection  `json:"rejection,omitempty"`
	Unbound   []reportListener  `json:"unbound,omitempty"`
	Configs   map[string]string `json:"configs"`
}

// reportRejection is a rejected configuration in a report.
type reportRejection struct {
	Version uint64 `json:"version"`
	Code    string `json:"code"`
	Reason  string `json:"reason"`
}

// reportListener is an unbound dataplane listener in a report.
type reportListener struct {
	Address string `json:"address,omitempty"`
	Port    uint32 `json:"port"`
	Error   string `json:"error,omitempty"`
}

// reportOf summarizes r.
func reportOf(r deliver.Result) report {
	rep := report{Version: r.AppliedVersion, Hash: r.AppliedHash, Connected: r.Connected, Synced: r.Synced}
	if rej := r.Rejection; rej != nil {
		rep.Rejection = &reportRejection{Version: rej.Version, Code: rej.Code.String(), Reason: clip.Truncate(rej.Reason, maxReportReason)}
	}
	for _, l := range r.Listeners {
		if !l.Bound {
			rep.Unbound = append(rep.Unbound, reportListener{Address: l.Address, Port: l.Port, Error: clip.Truncate(l.Error, maxReportReason)})
		}
	}
	if r.Configs != nil {
		rep.Configs = make(map[string]string, len(r.Configs))
		for gw, h := range r.Configs {
			rep.Configs[gw.String()] = h
		}
	}
	return rep
}

// result turns a report of node back into a deliver.Result (unbound listeners only).
func (rep report) result(node string) deliver.Result {
	r := deliver.Result{Node: node, Connected: rep.Connected, Synced: rep.Synced, AppliedVersion: rep.Version, AppliedHash: rep.Hash}
	if rej := rep.Rejection; rej != nil {
		r.Rejection = &deliver.Rejection{Version: rej.Version, Code: rpc.Nack_Code(rpc.Nack_Code_value[rej.Code]), Reason: rej.Reason}
	}
	for _, l := range rep.Unbound {
		r.Listeners = append(r.Listeners, deliver.ListenerResult{Address: l.Address, Port: l.Port, Error: l.Error})
	}
	if rep.Configs != nil {
		r.Configs = make(map[types.NamespacedName]string, len(rep.Configs))
		for gw, h := range rep.Configs {
			if ns, name, ok := strings.Cut(gw, "/"); ok {
				r.Configs[types.NamespacedName{Namespace: ns, Name: name}] = h
			}
		}
	}
	return r
}
