package charttest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

// permission is one (API group, resource, resource name, verb) that a rule grants.
type permission struct{ group, resource, name, verb string }

// permissions expands rules into the sorted list of single permissions they grant.
func permissions(rules []rbacv1.PolicyRule) []permission {
	var out []permission
	for _, r := range rules {
		names := r.ResourceNames
		if len(names) == 0 {
			names = []string{""}
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, n := range names {
					for _, v := range r.Verbs {
						out = append(out, permission{g, res, n, v})
					}
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b permission) int {
		for _, c := range [][2]string{{a.group, b.group}, {a.resource, b.resource}, {a.name, b.name}, {a.verb, b.verb}} {
			if c[0] != c[1] {
				if c[0] < c[1] {
					return -1
				}
				return 1
			}
		}
		return 0
	})
	return slices.Compact(out)
}

// TestRBACMatchesConfig checks that the chart's ClusterRole and Role grant exactly what
// config/rbac/role.yaml and config/rbac/leader_election_role.yaml grant.
func TestRBACMatchesConfig(t *testing.T) {
	r := decodeRendering(t, render(t, false))
	root := repoRoot(t)

	var cr rbacv1.ClusterRole
	decodeStrict(t, readFile(t, filepath.Join(root, "config", "rbac", "role.yaml")), &cr)
	if got, want := permissions(r.clusterRole.Rules), permissions(cr.Rules); !slices.Equal(got, want) {
		t.Errorf("chart ClusterRole grants\n  %v\nconfig/rbac/role.yaml grants\n  %v", got, want)
	}
	var role rbacv1.Role
	decodeStrict(t, readFile(t, filepath.Join(root, "config", "rbac", "leader_election_role.yaml")), &role)
	if got, want := permissions(r.role.Rules), permissions(role.Rules); !slices.Equal(got, want) {
		t.Errorf("chart Role grants\n  %v\nconfig/rbac/leader_election_role.yaml grants\n  %v", got, want)
	}
	for _, p := range append(permissions(r.clusterRole.Rules), permissions(r.role.Rules)...) {
		if p.group == "*" || p.resource == "*" || p.verb == "*" {
			t.Errorf("wildcard permission %v", p)
		}
		if p.resource == "secrets" && p.verb != "get" && p.verb != "list" && p.verb != "watch" {
			t.Errorf("the controller must only read Secrets, not %s them", p.verb)
		}
	}
}

// TestLeaderElectionLease checks that the Role names the Lease the controller uses.
func TestLeaderElectionLease(t *testing.T) {
	src := readFile(t, filepath.Join(repoRoot(t), "cmd", "flax-controller", "main.go"))
	m := regexp.MustCompile(`leaderElectionID = "([^"]+)"`).FindSubmatch(src)
	if m == nil {
		t.Fatal("leaderElectionID not found in cmd/flax-controller/main.go; update this test")
	}
	r := decodeRendering(t, render(t, false))
	var names []string
	for _, rule := range r.role.Rules {
		names = append(names, rule.ResourceNames...)
	}
	if !slices.Equal(names, []string{string(m[1])}) {
		t.Errorf("Role resourceNames %v, want [%s] (leaderElectionID in cmd/flax-controller/main.go)", names, m[1])
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
