package dataplanev1_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"sigs.k8s.io/yaml"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// This file is self-contained (no helpers from other test files), so that it can
// move with the YAML code. Paths are relative to a package three levels below the
// repository root.

// repoRoot is the repository root seen from this package's directory.
const repoRoot = "../../.."

// TestYAMLRoundTripRepositorySnapshots checks every snapshot written as YAML in the
// repository: the standalone examples and the snapshots inside the translator's
// golden outputs. Each must parse, survive MarshalYAML then Parse unchanged, and
// MarshalYAML of the parsed snapshot must be a fixed point. The goldens are
// MarshalYAML output already, so for them the form must come back byte for byte.
func TestYAMLRoundTripRepositorySnapshots(t *testing.T) {
	examples, err := filepath.Glob(filepath.Join(repoRoot, "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	goldens, err := filepath.Glob(filepath.Join(repoRoot, "controllers", "translate", "testdata", "*.out.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(examples) == 0 || len(goldens) == 0 {
		t.Fatalf("found %d examples and %d translator goldens; the paths in this test are stale", len(examples), len(goldens))
	}
	for _, path := range examples {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			checkYAMLRoundTrip(t, data, false)
		})
	}
	for _, path := range goldens {
		t.Run("translate/"+filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			if err := yaml.Unmarshal(data, &doc); err != nil {
				t.Fatal(err)
			}
			snap, ok := doc["snapshot"]
			if !ok {
				t.Fatalf("no snapshot key in %s", path)
			}
			// The golden embeds the snapshot as a YAML subtree: re-marshalling it
			// alone gives the document MarshalYAML wrote, except that the golden
			// shortens PEM bytes to a summary; its base64 stands in for them.
			snapYAML, err := yaml.Marshal(encodePEMSummaries(snap))
			if err != nil {
				t.Fatal(err)
			}
			checkYAMLRoundTrip(t, snapYAML, true)
		})
	}
}

// encodePEMSummaries replaces, in the JSON form v of a snapshot, the PEM summaries
// the translator goldens write ("-----BEGIN CERTIFICATE----- ... (639 bytes,
// sha256 ...)") by their base64 form, which is what a bytes field holds in YAML.
func encodePEMSummaries(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && (k == "certPem" || k == "keyPem" || k == "caCertPem" || k == "clientCertPem" || k == "clientKeyPem") && strings.HasPrefix(s, "-----BEGIN") {
				x[k] = base64.StdEncoding.EncodeToString([]byte(s))
				continue
			}
			x[k] = encodePEMSummaries(val)
		}
	case []any:
		for i := range x {
			x[i] = encodePEMSummaries(x[i])
		}
	}
	return v
}

// checkYAMLRoundTrip parses y and checks Parse(MarshalYAML(s)) == s and that
// MarshalYAML(Parse(y)) is stable; canonical says y is MarshalYAML output itself.
func checkYAMLRoundTrip(t *testing.T, y []byte, canonical bool) {
	t.Helper()
	s, err := dataplanev1.Parse(y)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	y1 := mustMarshalYAML(t, s)
	if canonical && !bytes.Equal(y, y1) {
		t.Errorf("MarshalYAML(Parse(y)) differs from y:\n%s\n---\n%s", y, y1)
	}
	checkSnapshotRoundTrip(t, s, y1)
}

// checkSnapshotRoundTrip checks that y, the YAML form of s, parses back to s and
// marshals again to the same bytes.
func checkSnapshotRoundTrip(t *testing.T, s *dataplanev1.Snapshot, y []byte) {
	t.Helper()
	back, err := dataplanev1.Parse(y)
	if err != nil {
		t.Fatalf("Parse(MarshalYAML(s)): %v\n%s", err, y)
	}
	if !proto.Equal(s, back) {
		t.Fatalf("Parse(MarshalYAML(s)) != s:\nwant: %s\n got: %s\nYAML:\n%s", prototext.Format(s), prototext.Format(back), y)
	}
	if again := mustMarshalYAML(t, back); !bytes.Equal(y, again) {
		t.Fatalf("MarshalYAML is not stable:\n%s\n---\n%s", y, again)
	}
}

func mustMarshalYAML(t *testing.T, s *dataplanev1.Snapshot) []byte {
	t.Helper()
	y, err := dataplanev1.MarshalYAML(s)
	if err != nil {
		t.Fatalf("MarshalYAML: %v", err)
	}
	return y
}

// TestYAMLRoundTripEveryField fills every field of every message reachable from
// Snapshot with a value that is not the default, through protoreflect, so that a
// field added to snapshot.proto is covered without touching this test. Only one
// member of a oneof can be set at a time: the filler sets the members of each
// oneof in turn, and the test builds snapshots until every field of every message
// (every oneof member included) has been set in one of them. The values are chosen
// to be hard for YAML: strings that look like numbers, booleans or nulls, 64-bit
// integers beyond float64's precision, bytes that are not UTF-8, durations beyond
// Go's range.
func TestYAMLRoundTripEveryField(t *testing.T) {
	md := (&dataplanev1.Snapshot{}).ProtoReflect().Descriptor()
	var all []protoreflect.FullName
	walkMessages(md, map[protoreflect.FullName]bool{}, func(m protoreflect.MessageDescriptor) {
		for i := 0; i < m.Fields().Len(); i++ {
			all = append(all, m.Fields().Get(i).FullName())
		}
	})
	f := &filler{set: map[protoreflect.FullName]bool{}, turn: map[protoreflect.FullName]int{}}
	missing := func() []string {
		var out []string
		for _, name := range all {
			if !f.set[name] {
				out = append(out, string(name))
			}
		}
		return out
	}
	for i := 0; len(missing()) > 0 && i < 16; i++ {
		t.Run(fmt.Sprintf("snapshot-%d", i), func(t *testing.T) {
			s := &dataplanev1.Snapshot{}
			f.fill(s.ProtoReflect(), nil)
			checkSnapshotRoundTrip(t, s, mustMarshalYAML(t, s))
		})
	}
	if m := missing(); len(m) > 0 {
		t.Errorf("fields never set by the filler in 16 snapshots (a kind it does not handle, or a message type it does not reach): %v", m)
	}
}

// walkMessages calls fn for md and every message type reachable from it, once
// each, skipping well-known types.
func walkMessages(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool, fn func(protoreflect.MessageDescriptor)) {
	if seen[md.FullName()] || md.FullName().Parent() == "google.protobuf" {
		return
	}
	seen[md.FullName()] = true
	fn(md)
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		if fd.IsMap() {
			fd = fd.MapValue()
		}
		if sub := fd.Message(); sub != nil {
			walkMessages(sub, seen, fn)
		}
	}
}

// filler sets every field of a message to a non-default value.
type filler struct {
	n    int                            // counts values, so that two values of one field differ
	set  map[protoreflect.FullName]bool // the fields set so far
	turn map[protoreflect.FullName]int  // per oneof, how many times it has been filled
}

// trickyStrings are strings YAML would read as something else if written bare.
var trickyStrings = []string{
	"true", "no", "null", "~", "0x1F", "1e3", "0777", "-.inf", "12:30",
	"a: b", "- item", "#comment", "  padded ", "line\nbreak", "tab\there",
	"quote\"s'", "ünïcødé ✓", "*.example.com", "{x}", "@x", "%x", "",
}

// fill sets every field of m, recursing into messages; stack holds the message
// types being filled, so that a recursive type is filled once and its nested
// occurrence left empty.
func (f *filler) fill(m protoreflect.Message, stack []protoreflect.FullName) {
	md := m.Descriptor()
	if md.FullName() == "google.protobuf.Duration" {
		f.fillDuration(m)
		return
	}
	if slices.Contains(stack, md.FullName()) {
		return
	}
	stack = append(stack, md.FullName())
	chosen := map[protoreflect.FullName]protoreflect.FieldDescriptor{}
	for i := 0; i < md.Oneofs().Len(); i++ {
		od := md.Oneofs().Get(i)
		if !od.IsSynthetic() {
			chosen[od.FullName()] = od.Fields().Get(f.turn[od.FullName()] % od.Fields().Len())
			f.turn[od.FullName()]++
		}
	}
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() && chosen[od.FullName()] != fd {
			continue
		}
		f.set[fd.FullName()] = true
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for range 2 {
				k := f.scalar(fd.MapKey()).MapKey()
				if fd.MapValue().Message() != nil {
					v := mp.NewValue()
					f.fill(v.Message(), stack)
					mp.Set(k, v)
				} else {
					mp.Set(k, f.scalar(fd.MapValue()))
				}
			}
		case fd.IsList():
			l := m.Mutable(fd).List()
			for range 2 {
				if fd.Message() != nil {
					v := l.NewElement()
					f.fill(v.Message(), stack)
					l.Append(v)
				} else {
					l.Append(f.scalar(fd))
				}
			}
		case fd.Message() != nil:
			f.fill(m.Mutable(fd).Message(), stack)
		default:
			m.Set(fd, f.scalar(fd))
		}
	}
}

// fillDuration sets a duration within Go's range (written "1h2m3.004005006s") or,
// every third value, beyond it (kept in the protojson form).
func (f *filler) fillDuration(m protoreflect.Message) {
	f.n++
	d := &durationpb.Duration{Seconds: 3723 + int64(f.n), Nanos: 4005006}
	switch f.n % 3 {
	case 1:
		d = &durationpb.Duration{Seconds: 300 * 365 * 24 * 3600, Nanos: 1}
	case 2:
		d = &durationpb.Duration{Nanos: int32(250_000_000 + f.n)}
	}
	proto.Merge(m.Interface(), d)
}

// scalar returns a non-default value for a field of a scalar kind.
func (f *filler) scalar(fd protoreflect.FieldDescriptor) protoreflect.Value {
	f.n++
	n := f.n
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		if vals.Len() < 2 {
			return protoreflect.ValueOfEnum(vals.Get(0).Number())
		}
		// A named value other than the zero one, rotating through them.
		return protoreflect.ValueOfEnum(vals.Get(1 + n%(vals.Len()-1)).Number())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(-2_000_000_000 + int32(n))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(4_000_000_000 + uint32(n))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(-(1 << 62) - int64(n)) // not exact in a float64
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(1<<63 + 1 + uint64(n))
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(1.5 + float32(n))
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(0.1 + float64(n))
	case protoreflect.StringKind:
		s := trickyStrings[n%len(trickyStrings)]
		if s == "" {
			s = fmt.Sprintf("empty-%d", n) // "" is the default
		}
		return protoreflect.ValueOfString(s)
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte{0, 0xff, 0xfe, byte(n), '\n', '"'})
	}
	panic(fmt.Sprintf("filler: no value for %s of kind %s", fd.FullName(), fd.Kind()))
}
