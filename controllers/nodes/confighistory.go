package nodes

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/flaxlb/flax/controllers/translate"
)

// maxRecentConfigs is how many published snapshots a ConfigHistory remembers. The
// dataplane acknowledges the snapshot that was latest when it was sent, normally
// the latest or the one before; an Ack of a snapshot the history no longer holds
// leaves the node's configs unknown (waited for) until the next Ack.
const maxRecentConfigs = 16

// ConfigHistory remembers the Gateways' config hashes of the snapshots this node
// published recently, by snapshot hash, so that the configuration the local
// dataplane acknowledges (known to the Delivery only by its hash) can be told
// per Gateway. The zero value is empty and ready to use.
type ConfigHistory struct {
	mu sync.Mutex
	// recent are the latest published snapshots, oldest first.
	recent []publishedConfigs
	// applied is the entry last looked up, kept when it leaves recent: the
	// dataplane runs it until it acknowledges another.
	applied publishedConfigs
}

// publishedConfigs is the config hash of every Gateway served by the snapshot of
// hash hash.
type publishedConfigs struct {
	hash    string
	configs map[types.NamespacedName]string
}

// Add records the config hashes of out's Gateways under out's snapshot hash.
func (h *ConfigHistory) Add(out *translate.Output) {
	e := publishedConfigs{hash: out.Snapshot.GetHash(), configs: map[types.NamespacedName]string{}}
	for _, gs := range out.Gateways {
		if gs.ConfigHash != "" {
			e.configs[gs.NamespacedName] = gs.ConfigHash
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.recent); n > 0 && h.recent[n-1].hash == e.hash {
		return
	}
	h.recent = append(h.recent, e)
	if len(h.recent) > maxRecentConfigs {
		h.recent = append(h.recent[:0], h.recent[len(h.recent)-maxRecentConfigs:]...)
	}
}

// Lookup returns the config hashes of the snapshot of hash hash, and false if the
// history does not hold it. The map must not be modified.
func (h *ConfigHistory) Lookup(hash string) (map[types.NamespacedName]string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if hash == "" {
		return nil, false
	}
	if h.applied.hash == hash {
		return h.applied.configs, true
	}
	for i := len(h.recent) - 1; i >= 0; i-- {
		if h.recent[i].hash == hash {
			h.applied = h.recent[i]
			return h.applied.configs, true
		}
	}
	return nil, false
}
