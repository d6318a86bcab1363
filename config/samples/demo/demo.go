// Package demo embeds the local cluster's sample, so that hack/localcluster (which
// applies it with --sample) and the e2e tests (which expect and restore it) share one
// copy of each manifest. The files are plain YAML for kubectl as well.
package demo

import _ "embed"

// App is the sample's Namespace demo, Deployment and Service echo, and Gateway demo.
//
//go:embed app.yaml
var App string

// EchoRoute is HTTPRoute echo, which sends every request to Gateway demo to Service echo.
//
//go:embed echo-route.yaml
var EchoRoute string

// V2Route is HTTPRoute echo-v2: host v2.example.com, path /v2, header X-Via: flax-sample.
//
//go:embed v2-route.yaml
var V2Route string

// ListenerSet is ListenerSet team, which adds a listener on port 8081 for
// team.example.com to Gateway demo, and HTTPRoute team, attached to it.
//
//go:embed listenerset.yaml
var ListenerSet string
