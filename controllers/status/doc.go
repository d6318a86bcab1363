// Package status is the last stage, watch → translate → deliver → status: it tells
// users what became of their objects.
//
// The Writer (writer.go) writes the statuses the translator computed to
// GatewayClasses, Gateways, ListenerSets, HTTPRoutes, GRPCRoutes (TCPRoutes and TLSRoutes
// when served) and the ancestor entries of BackendPolicies
// and RoutePolicies. It needs leader election, so only the leader writes. It writes
// only when a status differs from the object's ignoring LastTransitionTime, keeps
// the LastTransitionTime of a condition whose status did not change
// (conditions.go), and retries conflicts, re-reading the object. It owns only the
// route parent statuses and policy ancestor entries carrying its controllerName.
//
// Before writing, it folds the dataplane results of every counted node (a
// ResultSource, in the controller nodes.Leases) into the Gateways' Programmed
// conditions (results.go): a rejected configuration turns every Gateway's
// Programmed False/Invalid with the dataplane's reason (the dataplane keeps serving
// the previous one); a listener the dataplane cannot bind turns that listener's
// Programmed False/Pending with the bind error; a node that has applied nothing
// yet, or runs another config hash of a Gateway than the translator computed,
// makes it False/Pending, naming the nodes it waits for. Endpoint changes alone do
// not change config hashes, so they never turn Programmed False. A ListenerSet's
// Programmed turns False (ParentNotProgrammed) when its Gateway's does, and its
// listeners' as the Gateway's listeners' do when their port is not bound.
//
// The EventReporter (events.go) runs on every node and emits Warning Events
// (ConfigurationRejected, ListenerNotBound) on the Gateways concerned, once per new
// problem of its own dataplane. Metrics (metrics.go): status writes by kind and
// result.
package status
