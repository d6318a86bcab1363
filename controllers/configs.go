package controllers

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/flaxlb/flax/controllers/translate"
)

// maxRecentConfigs is how many published snapshots a configBook remembers. The
// dataplane acknowledges the snapshot that was latest when it was sent, normally
// the latest or the one before; an Ack of a snapshot the book no longer holds
// leaves the node's configs unknown (waited for) until the next Ack.
const maxRecentConfigs = 16

// configBook remembers the Gateways' config hashes of the snapshots this node
// published recently, by snapshot hash, so that the configuration the local
// dataplane acknowledges (known to the Delivery only by its hash) can be told
// per Gateway.
type configBook struct {
	mu sync.Mutex
	// recent are the latest published snapshots, oldest first.
	recent []bookEntry
	// applied is the entry last looked up, kept when it leaves recent: the
	// dataplane runs it until it acknowledges another.
	applied bookEntry
}

// bookEntry is the config hash of every Gateway served by the snapshot of hash
// hash.
type bookEntry struct {
	hash    string
	configs map[types.NamespacedName]string
}

// add records the config hashes of out's Gateways under out's snapshot hash.
func (b *configBook) add(out *translate.Output) {
	e := bookEntry{hash: out.Snapshot.GetHash(), configs: map[types.NamespacedName]string{}}
	for _, gs := range out.Gateways {
		if gs.ConfigHash != "" {
			e.configs[gs.NamespacedName] = gs.ConfigHash
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := len(b.recent); n > 0 && b.recent[n-1].hash == e.hash {
		return
	}
	b.recent = append(b.recent, e)
	if len(b.recent) > maxRecentConfigs {
		b.recent = append(b.recent[:0], b.recent[len(b.recent)-maxRecentConfigs:]...)
	}
}

// lookup returns the config hashes of the snapshot of hash hash, and false if the
// book does not hold it. The map must not be modified.
func (b *configBook) lookup(hash string) (map[types.NamespacedName]string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if hash == "" {
		return nil, false
	}
	if b.applied.hash == hash {
		return b.applied.configs, true
	}
	for i := len(b.recent) - 1; i >= 0; i-- {
		if b.recent[i].hash == hash {
			b.applied = b.recent[i]
			return b.applied.configs, true
		}
	}
	return nil, false
}
