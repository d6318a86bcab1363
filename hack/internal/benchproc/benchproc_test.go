package benchproc

import (
	"os"
	"testing"
)

func TestParseVMRSS(t *testing.T) {
	status := "Name:\tnginx\nVmPeak:\t   20000 kB\nVmRSS:\t    1234 kB\nRssAnon:\t     500 kB\n"
	got, err := parseVMRSS(status)
	if err != nil || got != 1234<<10 {
		t.Fatalf("parseVMRSS = %d, %v; want %d", got, err, 1234<<10)
	}
	if got, err := parseVMRSS("Name:\tzombie\nState:\tZ (zombie)\n"); err != nil || got != 0 {
		t.Fatalf("no VmRSS line: got %d, %v; want 0, nil", got, err)
	}
	if _, err := parseVMRSS("VmRSS:\tlots kB\n"); err == nil {
		t.Fatal("a malformed VmRSS parsed without error")
	}
}

func TestTreeRSSOfSelf(t *testing.T) {
	rss, err := TreeRSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss < 1<<20 {
		t.Fatalf("this test process's RSS is %d bytes, want at least 1 MiB", rss)
	}
	if _, err := TreeRSS(1 << 30); err == nil {
		t.Fatal("TreeRSS of a pid that cannot exist returned no error")
	}
}
