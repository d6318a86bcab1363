package translate

import (
	"testing"
	"time"
)

func TestIntersect(t *testing.T) {
	tests := []struct {
		listener, route string
		want            string
		ok              bool
	}{
		{"", "", "", true},
		{"", "a.example.com", "a.example.com", true},
		{"", "*.example.com", "*.example.com", true},
		{"a.example.com", "", "a.example.com", true},
		{"a.example.com", "a.example.com", "a.example.com", true},
		{"a.example.com", "b.example.com", "", false},
		{"a.example.com", "*.example.com", "a.example.com", true},
		{"a.b.example.com", "*.example.com", "a.b.example.com", true},
		{"example.com", "*.example.com", "", false},
		{"*.example.com", "a.example.com", "a.example.com", true},
		{"*.example.com", "a.b.example.com", "a.b.example.com", true},
		{"*.example.com", "example.com", "", false},
		{"*.example.com", "aexample.com", "", false},
		{"*.example.com", "*.example.com", "*.example.com", true},
		{"*.example.com", "*.b.example.com", "*.b.example.com", true},
		{"*.b.example.com", "*.example.com", "*.b.example.com", true},
		{"*.example.com", "*.com", "*.example.com", true},
		{"*.example.com", "*.example.net", "", false},
		{"*.example.com", "*.xexample.com", "", false},
	}
	for _, tt := range tests {
		got, ok := intersect(tt.listener, tt.route)
		if got != tt.want || ok != tt.ok {
			t.Errorf("intersect(%q, %q) = %q, %t; want %q, %t", tt.listener, tt.route, got, ok, tt.want, tt.ok)
		}
	}
}

func TestOwner(t *testing.T) {
	hosts := []string{"", "*.example.com", "*.foo.example.com", "abc.foo.example.com"}
	tests := []struct{ h, want string }{
		{"", ""},
		{"bar.com", ""},
		{"*.com", ""},
		{"x.example.com", "*.example.com"},
		{"*.example.com", "*.example.com"},
		{"x.foo.example.com", "*.foo.example.com"},
		{"*.foo.example.com", "*.foo.example.com"},
		{"*.bar.foo.example.com", "*.foo.example.com"},
		{"abc.foo.example.com", "abc.foo.example.com"},
		{"example.com", ""},
	}
	for _, tt := range tests {
		got, ok := owner(hosts, tt.h)
		if !ok || got != tt.want {
			t.Errorf("owner(%q) = %q, %t; want %q", tt.h, got, ok, tt.want)
		}
	}
	if got, ok := owner([]string{"a.example.com"}, "b.example.com"); ok {
		t.Errorf("owner of an uncovered hostname = %q, want none", got)
	}
}

func TestValidHostname(t *testing.T) {
	for _, h := range []string{"example.com", "*.example.com", "a-b.c", "x", "1.example.com"} {
		if !validHostname(h) {
			t.Errorf("validHostname(%q) = false", h)
		}
	}
	for _, h := range []string{"", "*", "*.", "Example.com", "a..b", "-a.com", "a-.com", "a.*.com", "1.2.3.4", "a_b.com", "a.com."} {
		if validHostname(h) {
			t.Errorf("validHostname(%q) = true", h)
		}
	}
}

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{
		"0s":          0,
		"1h":          time.Hour,
		"10s":         10 * time.Second,
		"500ms":       500 * time.Millisecond,
		"1m30s":       90 * time.Second,
		"2s500ms":     2500 * time.Millisecond,
		"1h2m3s4ms":   time.Hour + 2*time.Minute + 3*time.Second + 4*time.Millisecond,
		"99999ms":     99999 * time.Millisecond,
		"00010s":      10 * time.Second,
		"1s1s":        2 * time.Second,
		"1ms1ms1ms1s": 1003 * time.Millisecond,
	}
	for s, want := range good {
		got, err := parseDuration(s)
		if err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "1", "s", "1.5s", "-1s", "1d", "1us", "100000s", "1h1m1s1ms1s", " 1s", "1S"} {
		if d, err := parseDuration(s); err == nil {
			t.Errorf("parseDuration(%q) = %v, want an error", s, d)
		}
	}
}

func TestTruncate(t *testing.T) {
	long := make([]byte, 2*maxMessageLength)
	for i := range long {
		long[i] = 'x'
	}
	got := truncate(string(long))
	if len(got) > maxMessageLength {
		t.Errorf("truncate returned %d bytes, want at most %d", len(got), maxMessageLength)
	}
	if truncate("short") != "short" {
		t.Error("truncate changed a short message")
	}
}
