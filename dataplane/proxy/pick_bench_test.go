package proxy

import (
	"testing"
)

const pickBenchSnapshot = `
listeners:
- name: web
  port: 8080
  protocol: HTTP
  virtualHosts:
  - name: all
    routes:
    - name: r
      backends: [{backendGroup: round_robin, weight: 1}]
backendGroups:
- name: round_robin
  endpoints: &eps [{address: 10.0.0.1, port: 80}, {address: 10.0.0.2, port: 80}, {address: 10.0.0.3, port: 80}, {address: 10.0.0.4, port: 80}]
- name: least_request
  loadBalancing: {policy: LEAST_REQUEST}
  endpoints: *eps
- name: maglev
  loadBalancing: {policy: MAGLEV, hashOn: {header: x-user}}
  endpoints: *eps
`

// BenchmarkPick measures a worker's pick and done through the selection
// interface, per built-in policy.
func BenchmarkPick(b *testing.B) {
	cfg, _ := compileTest(b, pickBenchSnapshot)
	key := []byte("user-1234")
	for _, name := range []string{"round_robin", "least_request", "maglev"} {
		b.Run(name, func(b *testing.B) {
			g := cfg.Group(name)
			p := NewPickers(1)
			b.ReportAllocs()
			for b.Loop() {
				ep, ok := p.Pick(g, key, nil)
				if !ok {
					b.Fatal("no endpoint")
				}
				p.Done(ep)
			}
		})
	}
}
