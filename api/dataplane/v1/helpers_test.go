package dataplanev1_test

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
	"github.com/flaxlb/flax/api/dataplane/v1/dataplanetest"
)

var (
	exampleYAMLPath  = "../../../examples/standalone.yaml"
	fieldPathElement = regexp.MustCompile(`^([A-Za-z0-9]+)(?:\[(\d+)\])?$`)
)

// validSnapshot returns a snapshot that uses most features of the contract.
func validSnapshot(t *testing.T) *dataplanev1.Snapshot { return dataplanetest.ValidSnapshot(t) }

// checkFieldPath fails the test unless path names fields of Snapshot by their
// protojson names, so that the paths validation tests expect are real ones.
func checkFieldPath(t *testing.T, path string) {
	t.Helper()
	md := (&dataplanev1.Snapshot{}).ProtoReflect().Descriptor()
	if path == "" {
		return
	}
	parts := strings.Split(path, ".")
	for i, part := range parts {
		m := fieldPathElement.FindStringSubmatch(part)
		if m == nil {
			t.Fatalf("path %q: malformed element %q", path, part)
		}
		fd := md.Fields().ByJSONName(m[1])
		if fd == nil {
			t.Fatalf("path %q: %s has no field %q", path, md.FullName(), m[1])
		}
		last := i == len(parts)-1
		if m[2] != "" && !fd.IsList() || m[2] == "" && fd.IsList() && !last {
			t.Fatalf("path %q: element %q: list index used %t, field is list %t", path, part, m[2] != "", fd.IsList())
		}
		if !last {
			if fd.Kind() != protoreflect.MessageKind {
				t.Fatalf("path %q: %q is not a message", path, part)
			}
			md = fd.Message()
		}
	}
}

// clone returns a deep copy of snap.
func clone(snap *dataplanev1.Snapshot) *dataplanev1.Snapshot { return proto.CloneOf(snap) }

// errorLines returns the messages of the errors joined in err.
func errorLines(err error) []string {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		var out []string
		for _, e := range joined.Unwrap() {
			out = append(out, e.Error())
		}
		return out
	}
	if err == nil {
		return nil
	}
	return []string{fmt.Sprint(err)}
}
