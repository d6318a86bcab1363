package main

import (
	"strings"
	"testing"
)

// TestHelpHasExamples checks that every command explains itself with examples.
func TestHelpHasExamples(t *testing.T) {
	for _, cmd := range [][]string{{}, {"translate"}, {"validate"}, {"status"}, {"config", "dump"}, {"completion"}} {
		out, _, err := flaxctl(t, "", append(cmd, "--help")...)
		if err != nil {
			t.Errorf("%v --help: %v", cmd, err)
			continue
		}
		for _, want := range []string{"Usage:", "Examples:", "--kubeconfig", "--context", "-o, --output"} {
			if !strings.Contains(out, want) {
				t.Errorf("flaxctl %s --help lacks %q:\n%s", strings.Join(cmd, " "), want, out)
			}
		}
	}
}

// TestCompletion checks that completion scripts are printed for bash, zsh and
// fish, and that another shell is refused.
func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{
		"bash": "__start_flaxctl",
		"zsh":  "#compdef flaxctl",
		"fish": "complete -c flaxctl",
	} {
		out, _, err := flaxctl(t, "", "completion", shell)
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("completion %s: %v; output lacks %q", shell, err, want)
		}
	}
	if _, _, err := flaxctl(t, "", "completion", "tcsh"); err == nil {
		t.Error("completion tcsh gave no error")
	}
	// Completion of flag values: -o offers the formats.
	out, _, err := flaxctl(t, "", "__complete", "status", "-o", "")
	if err != nil || !strings.Contains(out, "table\nyaml\njson\n") {
		t.Errorf("completing -o: %v\n%s", err, out)
	}
}

// TestKubectlPlugin checks how flaxctl behaves under kubectl's plugin names:
// kubectl-flax runs as "kubectl flax", kubectl_complete-flax answers kubectl's
// completion requests.
func TestKubectlPlugin(t *testing.T) {
	if got := commandNameOf("/usr/local/bin/kubectl-flax"); got != "kubectl flax" {
		t.Errorf("command name of kubectl-flax = %q", got)
	}
	if got := commandNameOf("bin/flaxctl"); got != "flaxctl" {
		t.Errorf("command name of flaxctl = %q", got)
	}
	args := argsOf("/home/me/bin/kubectl_complete-flax", []string{"st"})
	out, _, err := flaxctl(t, "", args...)
	if err != nil || !strings.HasPrefix(out, "status\t") {
		t.Errorf("kubectl_complete-flax st: %v\n%s", err, out)
	}
	if got := argsOf("flaxctl", []string{"status"}); len(got) != 1 || got[0] != "status" {
		t.Errorf("argsOf(flaxctl, status) = %v", got)
	}
}
