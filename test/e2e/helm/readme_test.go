package helm

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readmeBlock returns the fenced sh block that follows the `<!-- e2e:NAME` marker in the
// README and precedes `<!-- /e2e:NAME -->`: the commands the README tells users to run,
// which the e2e test runs as they are.
func readmeBlock(readme, name string) (string, error) {
	start := "<!-- e2e:" + name
	i := strings.Index(readme, start)
	if i < 0 {
		return "", fmt.Errorf("README: no %q marker", start)
	}
	if strings.Count(readme, start+" ")+strings.Count(readme, start+"\n") != 1 {
		return "", fmt.Errorf("README: %q must appear once", start)
	}
	rest := readme[i:]
	end := strings.Index(rest, "<!-- /e2e:"+name+" -->")
	if end < 0 {
		return "", fmt.Errorf("README: no closing <!-- /e2e:%s --> marker", name)
	}
	section := rest[strings.Index(rest, "\n")+1 : end]
	body, ok := strings.CutPrefix(section, "```sh\n")
	if !ok {
		return "", fmt.Errorf("README: the line after the e2e:%s marker must open a ```sh block", name)
	}
	body, ok = strings.CutSuffix(body, "```\n")
	if !ok || strings.Contains(body, "```") {
		return "", fmt.Errorf("README: the e2e:%s markers must enclose exactly one ```sh block", name)
	}
	return body, nil
}

func readREADME(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestREADMEBlocks checks, without a cluster, that the README's install, upgrade and
// uninstall blocks are where the e2e test looks for them and do what it checks.
func TestREADMEBlocks(t *testing.T) {
	readme := readREADME(t)
	want := map[string][]string{
		"install":   {"helm install flax ./charts/flax -n flax-system", "kubectl apply -k config/samples -n demo", "curl "},
		"upgrade":   {"helm upgrade flax ./charts/flax -n flax-system", "rollout status daemonset/flax"},
		"uninstall": {"helm uninstall flax -n flax-system"},
	}
	for name, needles := range want {
		block, err := readmeBlock(readme, name)
		if err != nil {
			t.Error(err)
			continue
		}
		for _, n := range needles {
			if !strings.Contains(block, n) {
				t.Errorf("README e2e:%s block does not contain %q:\n%s", name, n, block)
			}
		}
	}
}

func TestReadmeBlockErrors(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"missing", "nothing here\n", "no \"<!-- e2e:x\" marker"},
		{"unclosed", "<!-- e2e:x -->\n```sh\nls\n```\n", "no closing"},
		{"not sh", "<!-- e2e:x -->\n```bash\nls\n```\n<!-- /e2e:x -->\n", "must open a ```sh block"},
		{"two blocks", "<!-- e2e:x -->\n```sh\nls\n```\n```sh\nls\n```\n<!-- /e2e:x -->\n", "exactly one"},
		{"twice", "<!-- e2e:x -->\n```sh\nls\n```\n<!-- /e2e:x -->\n<!-- e2e:x -->\n", "once"},
	} {
		if _, err := readmeBlock(tc.text, "x"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	got, err := readmeBlock("<!-- e2e:x (comment) -->\n```sh\nls -l\necho ok\n```\n<!-- /e2e:x -->\n", "x")
	if err != nil || got != "ls -l\necho ok\n" {
		t.Errorf("got %q, %v", got, err)
	}
}
