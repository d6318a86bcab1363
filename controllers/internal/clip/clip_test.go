package clip

import (
	"testing"
	"time"
	"unicode/utf8"
)

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"abcdefghijkl", 10, "abcdefg…"},
		// "é" is two bytes: the cut must not split it.
		{"aaaaaaéé", 9, "aaaaaa…"},
	} {
		got := Truncate(tc.in, tc.n)
		if got != tc.want || len(got) > tc.n || !utf8.ValidString(got) {
			t.Errorf("Truncate(%q, %d) = %q, want %q (at most %d bytes, valid UTF-8)", tc.in, tc.n, got, tc.want, tc.n)
		}
	}
}

func TestEarliest(t *testing.T) {
	a := time.Unix(100, 0)
	b := a.Add(time.Second)
	var zero time.Time
	for _, tc := range []struct{ x, y, want time.Time }{
		{a, b, a}, {b, a, a}, {zero, b, b}, {a, zero, a}, {zero, zero, zero},
	} {
		if got := Earliest(tc.x, tc.y); !got.Equal(tc.want) {
			t.Errorf("Earliest(%v, %v) = %v, want %v", tc.x, tc.y, got, tc.want)
		}
	}
}
