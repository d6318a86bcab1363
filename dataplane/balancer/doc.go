// Package balancer picks the upstream endpoint for each request.
//
// # Groups and pickers
//
// A [Group] is compiled once per backend (a set of [Endpoint]s plus a
// [Config]) by [NewGroup]. Everything a policy can precompute (the smooth
// weighted round-robin schedule, cumulative weights, the hash ring, the
// Maglev lookup table) is built there, and a Group is never modified
// afterwards, so every worker thread shares it without locks. A
// configuration change builds a new Group.
//
// Mutable state lives in a [Picker], created per worker per group with
// [Group.NewPicker]: round-robin cursors, the random number generator and
// in-flight request counters. A Picker must only be used by one goroutine
// at a time; nothing in [Picker.Pick] or [Picker.Done] locks or allocates.
//
// # Endpoint eligibility
//
// NewGroup selects the eligible endpoints once:
//
//   - endpoints with Ready set are eligible;
//   - if none is Ready, endpoints that are Serving and Terminating are
//     eligible instead, so that traffic keeps flowing during a rollout in
//     which every remaining pod is shutting down gracefully;
//   - if neither exists the group is empty and Pick returns ok=false.
//
// At pick time the caller passes the set of endpoints it currently
// considers unhealthy (ejected by outlier detection, failing active health
// checks) as a [Bitset] indexed like the endpoint slice; nil means all are
// healthy. Unhealthy endpoints are skipped, except in panic mode: when fewer
// than [Config].PanicThreshold percent (default 50%) of the eligible
// endpoints are healthy, health is ignored and every eligible endpoint is
// used, as Envoy does, to avoid overloading the few healthy ones. Counting
// healthy endpoints costs one popcount per 64 endpoints.
//
// # Policies
//
//   - [RoundRobin] cycles through the eligible endpoints, ignoring weights.
//   - [WeightedRoundRobin] is the smooth weighted round robin of nginx:
//     weights 5,1,1 give a a b a c a a. When the schedule period (the sum of
//     the weights divided by their greatest common divisor) is small enough
//     it is precomputed at build time and a pick is O(1); otherwise each
//     picker runs the O(n) algorithm on its own counters.
//   - [LeastRequest] draws two distinct eligible endpoints at random and
//     takes the one with the lower (in-flight+1)/weight ("power of two
//     choices"); a tie goes to the first draw, which keeps equally loaded
//     endpoints equally used. In-flight counts are per picker: Pick
//     increments and Done decrements them.
//   - [Random] picks an endpoint at random, in proportion to its weight.
//   - [RingHash] is a ketama-style consistent hash ring: each endpoint
//     owns weight × scale points, scale being the smallest power of two
//     that makes the ring at least MinRingSize points long (bounded by
//     MaxRingSize), and a key maps to the first point at or after its hash,
//     found by binary search. Since the scale rarely changes when an
//     endpoint comes or goes, the other endpoints keep their points and
//     only the keys of that endpoint move. An unhealthy owner passes the
//     key on to the next point of a healthy endpoint.
//   - [Maglev] fills a lookup table of a prime size (default 65537) from
//     per-endpoint permutations, weighting how often each endpoint claims a
//     slot; a key maps to table[hash mod size] and an unhealthy owner passes
//     the key to the following slots.
//
// Hash policies take the key bytes (a header or cookie value, a source IP)
// and return a random endpoint when the key is empty.
//
// # Registered algorithms
//
// Every policy is an [Algorithm]: it makes one [Selector] per worker and
// group, which picks an endpoint index from the request's key and the set
// of endpoints to avoid. The built-in policies are Algorithms ([Policy]'s
// selector is the [Picker] above), and a program adds its own with
// [Register]; a snapshot's backend group names one in
// loadBalancing.algorithm. The engines give a registered algorithm what the
// built-in ones get: the endpoints failing health checks or ejected by
// outlier detection, and those earlier attempts of the request failed on,
// arrive in the unhealthy set ([Group.Usable] applies the panic threshold
// to it), and retries, circuit breakers and in-flight accounting (Done)
// work alike. An algorithm that implements [Keyer] reads the request
// ([Request]: method, host, path, query, headers, client address) once,
// while its head is available, and turns it into the key every attempt is
// picked with; otherwise the key is what the group hashes on (hashOn), if
// anything. Selectors run on the worker's thread: they must not block, and
// to keep the request path free of allocations, Pick, Done and AppendKey
// (appending within dst's capacity) must not allocate.
//
// # Hash function
//
// Consistent hashing must agree across worker threads, processes and nodes,
// so the package uses its own fixed 64-bit hash, [Hash], instead of
// hash/maphash, whose seeds differ per process. It reads eight bytes per
// round, mixes each word with a multiply-xorshift step and finishes with
// the SplitMix64 finaliser. Its output is part of the package's contract:
// changing it remaps every key. Hash ring points and Maglev permutations are
// derived from each endpoint's address ("ip:port"), and endpoints are
// visited in address order while building, so two groups built from the
// same endpoints, in any order, on any node, map every key alike.
//
// # Complexity
//
// Pick is O(1) for RoundRobin, precomputed WeightedRoundRobin, LeastRequest
// and Maglev, O(log n) for weighted Random, and O(log ring size) for
// RingHash, plus the skipping of unhealthy endpoints (bounded, and expected
// to be short because panic mode caps the unhealthy share) and O(n/64) for
// counting healthy endpoints when a non-empty unhealthy set is given.
package balancer
