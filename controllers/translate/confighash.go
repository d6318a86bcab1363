package translate

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"

	"google.golang.org/protobuf/proto"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// configHashLen is the length of a Gateway's config hash in hex digits (64 bits):
// every node reports one per Gateway in its node Lease, so it is kept short.
const configHashLen = 16

// configHashes returns the config hash of every Gateway served by snap (see
// GatewayStatus.ConfigHash); Gateways absent from the map have no part in snap.
// Each dataplane listener and backend group is serialized once, and a Gateway's
// hash is the hash of the names and hashes of its parts.
func (t *translator) configHashes(snap *dataplanev1.Snapshot) map[*gatewayInfo]string {
	groups := make(map[string]*dataplanev1.BackendGroup, len(snap.GetBackendGroups()))
	for _, g := range snap.GetBackendGroups() {
		groups[g.GetName()] = g
	}
	groupHashes := map[string][]byte{}
	groupHash := func(name string) []byte {
		if h, ok := groupHashes[name]; ok {
			return h
		}
		var h []byte
		if g := groups[name]; g != nil {
			// Endpoints travel on their own (EndpointUpdate): they are not part of
			// the configuration a Gateway waits for.
			g = dataplanev1.ShallowCopy(g)
			g.Endpoints = nil
			h = digest(g)
		}
		groupHashes[name] = h
		return h
	}

	// parts are the dataplane listeners serving each Gateway.
	parts := map[*gatewayInfo][]*dataplanev1.Listener{}
	for _, b := range t.bindOrder {
		if b.built == nil {
			continue
		}
		for _, l := range b.members {
			if l.programmed() && !slices.Contains(parts[l.gateway], b.built) {
				parts[l.gateway] = append(parts[l.gateway], b.built)
			}
		}
	}
	listenerHashes := map[*dataplanev1.Listener][]byte{}
	out := make(map[*gatewayInfo]string, len(parts))
	for g, listeners := range parts {
		slices.SortFunc(listeners, func(a, b *dataplanev1.Listener) int { return compareStrings(a.GetName(), b.GetName()) })
		var names []string
		sum := sha256.New()
		for _, l := range listeners {
			h, ok := listenerHashes[l]
			if !ok {
				h = digest(l)
				listenerHashes[l] = h
			}
			writeHashPart(sum, "listener", l.GetName(), h)
			names = appendGroupRefs(names, l)
		}
		slices.Sort(names)
		for _, name := range slices.Compact(names) {
			writeHashPart(sum, "group", name, groupHash(name))
		}
		out[g] = hex.EncodeToString(sum.Sum(nil))[:configHashLen]
	}
	return out
}

// writeHashPart writes one named part to a Gateway's hash, length-prefixed so that
// parts cannot run into each other.
func writeHashPart(w interface{ Write([]byte) (int, error) }, kind, name string, h []byte) {
	for _, s := range []string{kind, name, string(h)} {
		n := len(s)
		_, _ = w.Write([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
		_, _ = w.Write([]byte(s))
	}
}

// digest returns the SHA-256 of the deterministic serialization of m; a message
// that cannot be serialized (invalid UTF-8, which dataplanev1.Validate reports) gets
// the hash of nothing.
func digest(m proto.Message) []byte {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	sum := sha256.Sum256(b)
	return sum[:]
}

// appendGroupRefs appends the names of the backend groups l refers to: those of
// its routes' backends and mirrors (also in backend filters) and of its TCP
// and TLS routes. TestGroupRefFields keeps this in step with the snapshot's fields.
func appendGroupRefs(names []string, l *dataplanev1.Listener) []string {
	mirrors := func(filters []*dataplanev1.RouteFilter) {
		for _, f := range filters {
			if m := f.GetRequestMirror(); m != nil {
				names = append(names, m.GetBackendGroup())
			}
			if a := f.GetExtAuth(); a != nil {
				names = append(names, a.GetBackendGroup())
			}
		}
	}
	for _, vh := range l.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			mirrors(r.GetFilters())
			for _, b := range r.GetBackends() {
				if g := b.GetBackendGroup(); g != "" {
					names = append(names, g)
				}
				mirrors(b.GetFilters())
			}
		}
	}
	for _, b := range l.GetTcpRoute().GetBackends() {
		if g := b.GetBackendGroup(); g != "" {
			names = append(names, g)
		}
	}
	for _, r := range l.GetTlsRoutes() {
		for _, b := range r.GetBackends() {
			if g := b.GetBackendGroup(); g != "" {
				names = append(names, g)
			}
		}
	}
	return names
}
