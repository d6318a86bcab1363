package filter_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/flaxlb/flax/dataplane/filter"
)

type onRequest struct{ id int }

func (onRequest) OnRequest(filter.Request) {}

type onConn struct{}

func (onConn) OnConn(filter.Conn) {}

func TestRegistry(t *testing.T) {
	var r filter.Registry
	if _, ok := r.Lookup("a"); ok {
		t.Fatal("Lookup in an empty registry found a filter")
	}
	if err := r.Register("a", onRequest{id: 1}); err != nil {
		t.Fatalf("Register(a) = %v", err)
	}
	if err := r.Register("b", onConn{}); err != nil {
		t.Fatalf("Register(b) = %v", err)
	}
	f, ok := r.Lookup("a")
	if !ok || f != (onRequest{id: 1}) {
		t.Fatalf("Lookup(a) = %v, %v", f, ok)
	}
	for _, tc := range []struct {
		name string
		f    any
		want string
	}{
		{"", onRequest{}, "empty name"},
		{"a", onRequest{id: 2}, "already registered"},
		{"c", struct{}{}, "implements none"},
		{"d", nil, "implements none"},
	} {
		err := r.Register(tc.name, tc.f)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Register(%q, %T) = %v, want an error containing %q", tc.name, tc.f, err, tc.want)
		}
	}
	if f, _ := r.Lookup("a"); f != (onRequest{id: 1}) {
		t.Errorf("a failed Register replaced the filter: Lookup(a) = %v", f)
	}
	if got := r.Registered(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Registered() = %v, want [a b]", got)
	}
}

func TestMustRegisterPanics(t *testing.T) {
	var r filter.Registry
	r.MustRegister("x", onConn{})
	defer func() {
		if recover() == nil {
			t.Error("MustRegister of a taken name did not panic")
		}
	}()
	r.MustRegister("x", onConn{})
}

func TestDefaultRegistry(t *testing.T) {
	const name = "filter_test/default"
	if err := filter.Register(name, onConn{}); err != nil {
		t.Fatalf("Register = %v", err)
	}
	if _, ok := filter.Lookup(name); !ok {
		t.Fatal("Lookup after Register found nothing")
	}
	if _, ok := filter.Default.Lookup(name); !ok {
		t.Fatal("package Register did not use Default")
	}
	if !slices.Contains(filter.Registered(), name) {
		t.Fatalf("Registered() = %v, want it to hold %s", filter.Registered(), name)
	}
}
