package proxy

import (
	"net/netip"

	"github.com/flaxlb/flax/dataplane/balancer"
)

// requestView is an Exchange seen as the balancer.Request a selection
// algorithm's Keyer reads. It is valid while the request head is: from
// routing until the head is dropped before the first connect.
type requestView Exchange

var _ balancer.Request = (*requestView)(nil)

func (v *requestView) Method() []byte     { return v.view.Method }
func (v *requestView) Host() []byte       { return v.view.Host }
func (v *requestView) Path() []byte       { return v.view.Path }
func (v *requestView) Query() []byte      { return v.view.Query }
func (v *requestView) Client() netip.Addr { return v.client }

func (v *requestView) Header(name string) ([]byte, bool) { return (*Exchange)(v).Header(name) }
