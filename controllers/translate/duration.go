package translate

import (
	"fmt"
	"time"
)

// parseDuration parses a Gateway API duration (GEP-2257): one to four groups of one
// to five digits followed by a unit, h, m, s or ms, e.g. "1h30m" or "500ms". It is
// stricter than time.ParseDuration: no signs, fractions or other units.
func parseDuration(s string) (time.Duration, error) {
	bad := func() (time.Duration, error) {
		return 0, fmt.Errorf("invalid duration %q: want one to four groups of up to five digits and a unit (h, m, s or ms), such as \"10s\" or \"1m30s\"", s)
	}
	if s == "" {
		return bad()
	}
	var total time.Duration
	groups := 0
	for i := 0; i < len(s); {
		start := i
		var n int64
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			n = n*10 + int64(s[i]-'0')
			i++
		}
		if digits := i - start; digits == 0 || digits > 5 {
			return bad()
		}
		var unit time.Duration
		switch {
		case i+1 < len(s) && s[i] == 'm' && s[i+1] == 's':
			unit, i = time.Millisecond, i+2
		case i < len(s) && s[i] == 'h':
			unit, i = time.Hour, i+1
		case i < len(s) && s[i] == 'm':
			unit, i = time.Minute, i+1
		case i < len(s) && s[i] == 's':
			unit, i = time.Second, i+1
		default:
			return bad()
		}
		total += time.Duration(n) * unit
		groups++
	}
	if groups > 4 {
		return bad()
	}
	return total, nil
}
