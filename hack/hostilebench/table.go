package main

import (
	"fmt"
	"strings"
	"time"
)

// result is one attack against one proxy.
type result struct {
	attack, proxy              string
	skipped                    string
	rssIdle, rssPeak, rssAfter int64
	probeOK, probeTotal        int
	release                    outcome
	socketsLeft                int
}

// formatTables renders the results as one markdown table per attack, in the order the
// attacks ran, with the proxies as rows.
func formatTables(c *config, rs []result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nloopback; proxy pinned to CPU %d, backend, attackers and probes to CPU %d; each attack bounded to %s, RSS after read %s after it; probes: GET / every 100 ms on a new connection, %s timeout\n",
		c.proxyCPU, c.loadCPU, c.duration, c.settle, c.probeTimeout)
	if c.timeout > 0 {
		fmt.Fprintf(&b, "client and upstream timeouts of every proxy: %s\n", c.timeout)
	}
	if len(c.flaxArgs) > 0 {
		fmt.Fprintf(&b, "flax flags: %s\n", strings.Join(c.flaxArgs, " "))
	}
	descs := map[string]string{}
	for _, a := range allAttacks {
		descs[a.name] = a.desc(c)
	}
	last := ""
	for _, r := range rs {
		if r.attack != last {
			last = r.attack
			fmt.Fprintf(&b, "\n### %s: %s\n\n", r.attack, descs[r.attack])
			b.WriteString("| proxy | RSS idle | RSS peak | RSS after | probes ok | attacker conns released | sockets left |\n")
			b.WriteString("|---|---:|---:|---:|---:|---|---:|\n")
		}
		if r.skipped != "" {
			fmt.Fprintf(&b, "| %s | skipped: %s | | | | | |\n", r.proxy, strings.ReplaceAll(r.skipped, "|", "/"))
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %d |\n", r.proxy, mib(r.rssIdle), mib(r.rssPeak), mib(r.rssAfter),
			probeRate(r.probeOK, r.probeTotal), formatRelease(r.release), r.socketsLeft)
	}
	return b.String()
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func probeRate(ok, total int) string {
	if total == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%% (%d/%d)", 100*float64(ok)/float64(total), ok, total)
}

// formatRelease says how many of the attacker's connections the proxy released and how
// long the slowest took, or how many were still open at the bound.
func formatRelease(o outcome) string {
	var s string
	connected := o.released + o.open
	switch {
	case o.attackerEnd:
		s = fmt.Sprintf("n/a (attacker closes; %d sent)", o.attempted-o.failed)
	case connected == 0:
		s = "none connected"
	case o.open == 0:
		s = fmt.Sprintf("all %d, last after %s", o.released, roundDur(o.lastRelease))
	case o.released == 0:
		s = fmt.Sprintf("open (%d/%d)", o.open, connected)
	default:
		s = fmt.Sprintf("%d/%d, last after %s; %d open", o.released, connected, roundDur(o.lastRelease), o.open)
	}
	if o.failed > 0 {
		s += fmt.Sprintf("; %d failed to connect", o.failed)
	}
	return s
}

func roundDur(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}
