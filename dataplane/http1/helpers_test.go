package http1

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
)

// summarizeHead renders the exported state of h with its spans resolved.
func summarizeHead(buf []byte, h *Head) string {
	var b strings.Builder
	fmt.Fprintf(&b, "v=%d cl=%d chunked=%v conn=%b upg=%v:%q ka=%v len=%d fields:",
		h.Version, h.ContentLength, h.Chunked, h.Connection, h.HasUpgrade, h.Upgrade.Bytes(buf), h.KeepAlive, h.Len)
	for _, f := range h.Fields {
		fmt.Fprintf(&b, " [%q=%q id=%d cl=%v]", f.Name.Bytes(buf), f.Value.Bytes(buf), f.ID, f.ConnListed)
	}
	return b.String()
}

func summarizeRequest(buf []byte, r *Request) string {
	return fmt.Sprintf("%v %q target=%q form=%d path=%q query=%q/%v host=%v:%q auth=%q expect=%v framing=%d %s",
		r.Method, r.MethodSpan.Bytes(buf), r.Target.Bytes(buf), r.Form, r.Path.Bytes(buf), r.Query.Bytes(buf), r.HasQuery,
		r.HasHost, r.Host.Bytes(buf), r.Authority.Bytes(buf), r.ExpectContinue, r.Framing(), summarizeHead(buf, &r.Head))
}

func summarizeResponse(buf []byte, r *Response) string {
	return fmt.Sprintf("status=%d reason=%q framing=%d interim=%v %s",
		r.Status, r.Reason.Bytes(buf), r.Framing, r.Interim(), summarizeHead(buf, &r.Head))
}

// checkSpansErr verifies that every span of h lies within the head buf[:n].
func checkSpansErr(n int, h *Head, extra ...Span) error {
	if n <= 0 || n != h.Len {
		return fmt.Errorf("n = %d, Len = %d", n, h.Len)
	}
	in := func(what string, s Span) error {
		if s.End() > n {
			return fmt.Errorf("%s span %+v beyond head length %d", what, s, n)
		}
		return nil
	}
	for i, f := range h.Fields {
		if err := in(fmt.Sprint("name ", i), f.Name); err != nil {
			return err
		}
		if err := in(fmt.Sprint("value ", i), f.Value); err != nil {
			return err
		}
		if f.Name.Len == 0 {
			return fmt.Errorf("empty name %d", i)
		}
	}
	if err := in("upgrade", h.Upgrade); err != nil {
		return err
	}
	for i, s := range extra {
		if err := in(fmt.Sprint("span ", i), s); err != nil {
			return err
		}
	}
	return nil
}

func requestSpans(r *Request) []Span {
	return []Span{r.MethodSpan, r.Target, r.Path, r.Query, r.Host, r.Authority}
}

type testingT interface {
	Helper()
	Errorf(format string, args ...any)
}

func checkSpans(t testingT, buf []byte, n int, h *Head) {
	t.Helper()
	if err := checkSpansErr(n, h); err != nil {
		t.Errorf("%v", err)
	}
}

type parseResult struct {
	n   int
	err error
	sum string
}

// parseSplitRequest parses buf as it would arrive in pieces ending at each of
// cuts (sorted offsets; nil means one byte at a time), returning the first
// result that is not ErrNeedMore.
func parseSplitRequest(buf []byte, lim Limits, cuts []int) parseResult {
	var r Request
	try := func(end int) (parseResult, bool) {
		// A fresh slice header each time, as an engine would pass.
		n, err := ParseRequest(buf[:end:end], &r, lim)
		if errors.Is(err, ErrNeedMore) {
			return parseResult{}, false
		}
		res := parseResult{n: n, err: err}
		if err == nil {
			res.sum = summarizeRequest(buf, &r)
		}
		return res, true
	}
	return runSplits(len(buf), cuts, try)
}

func parseSplitResponse(buf []byte, m Method, lim Limits, cuts []int) parseResult {
	var r Response
	try := func(end int) (parseResult, bool) {
		n, err := ParseResponse(buf[:end:end], &r, m, lim)
		if errors.Is(err, ErrNeedMore) {
			return parseResult{}, false
		}
		res := parseResult{n: n, err: err}
		if err == nil {
			res.sum = summarizeResponse(buf, &r)
		}
		return res, true
	}
	return runSplits(len(buf), cuts, try)
}

func runSplits(total int, cuts []int, try func(end int) (parseResult, bool)) parseResult {
	if cuts == nil {
		for end := 0; end <= total; end++ {
			if res, ok := try(end); ok {
				return res
			}
		}
		return parseResult{err: ErrNeedMore}
	}
	for _, end := range cuts {
		if res, ok := try(end); ok {
			return res
		}
	}
	if res, ok := try(total); ok {
		return res
	}
	return parseResult{err: ErrNeedMore}
}

// randomCuts returns up to k sorted cut offsets in [0, total].
func randomCuts(rng *rand.Rand, total, k int) []int {
	cuts := make([]int, 0, k)
	if total == 0 {
		return cuts
	}
	for i := 0; i < k; i++ {
		cuts = append(cuts, rng.IntN(total+1))
	}
	for i := 1; i < len(cuts); i++ {
		for j := i; j > 0 && cuts[j] < cuts[j-1]; j-- {
			cuts[j], cuts[j-1] = cuts[j-1], cuts[j]
		}
	}
	return cuts
}
