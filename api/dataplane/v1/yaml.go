package dataplanev1

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"sigs.k8s.io/yaml"
)

// Load reads the YAML snapshot file at path and decodes it with Parse. It does not
// validate the snapshot; call Validate for that.
func Load(path string) (*Snapshot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading snapshot file: %w", err)
	}
	snap, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	return snap, nil
}

// Parse decodes the YAML form of a snapshot: the protojson form (lowerCamelCase
// field names, enum value names, bytes as base64) written as YAML. Durations may be
// written as Go durations ("250ms", "1m30s") as well as in the protojson form
// ("0.250s"). Unknown fields, duplicate keys and values of the wrong type are
// errors naming the field's path. Parse does not validate the snapshot; call
// Validate for that.
func Parse(data []byte) (*Snapshot, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("snapshot document is empty")
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("parsing yaml: %w", err)
	}
	doc, err := decodeJSON(js)
	if err != nil {
		return nil, fmt.Errorf("parsing yaml: %w", err)
	}
	if doc == nil {
		return nil, errors.New("snapshot document is empty")
	}
	// protojson names an offending field but not where it is, and its positions
	// refer to the intermediate JSON; check the document along the schema first.
	doc, err = normalizeMessage(doc, snapshotDescriptor(), root)
	if err != nil {
		return nil, fmt.Errorf("decoding snapshot: %w", err)
	}
	if js, err = json.Marshal(doc); err != nil {
		return nil, fmt.Errorf("decoding snapshot: %w", err)
	}
	snap := &Snapshot{}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(js, snap); err != nil {
		return nil, fmt.Errorf("decoding snapshot: %s", trimProtojsonError(err))
	}
	return snap, nil
}

// MarshalYAML encodes snap in the YAML form that Parse decodes, with durations
// written as Go durations ("1m30s").
func MarshalYAML(snap *Snapshot) ([]byte, error) {
	js, err := protojson.Marshal(snap)
	if err != nil {
		return nil, fmt.Errorf("encoding snapshot: %w", err)
	}
	doc, err := decodeJSON(js)
	if err != nil {
		return nil, fmt.Errorf("encoding snapshot: %w", err)
	}
	if js, err = json.Marshal(goDurations(doc, snapshotDescriptor())); err != nil {
		return nil, fmt.Errorf("encoding snapshot: %w", err)
	}
	out, err := yaml.JSONToYAML(js)
	if err != nil {
		return nil, fmt.Errorf("converting snapshot to yaml: %w", err)
	}
	return out, nil
}

// snapshotDescriptor describes the Snapshot message.
func snapshotDescriptor() protoreflect.MessageDescriptor {
	return (&Snapshot{}).ProtoReflect().Descriptor()
}

// decodeJSON decodes js into maps, slices and json.Numbers.
func decodeJSON(js []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	return doc, nil
}

// protojsonPrefix matches the "proto: (line 1:234): " prefix of protojson errors,
// whose space protojson randomly makes a non-breaking one.
var protojsonPrefix = regexp.MustCompile(`^proto:[\s\x{00a0}]*(\(line \d+:\d+\):[\s\x{00a0}]*)?`)

// trimProtojsonError drops protojson's prefix and its position in the intermediate
// JSON, which means nothing to the author of the YAML.
func trimProtojsonError(err error) string {
	return protojsonPrefix.ReplaceAllString(err.Error(), "")
}

// durationName is the full name of google.protobuf.Duration.
const durationName = "google.protobuf.Duration"

// normalizeMessage checks v, the JSON form of a message of type md at path p, and
// returns it with durations converted to the protojson form. It returns a
// FieldError for the first unknown field, unknown enum value, oneof with two
// members set or value of the wrong JSON type.
func normalizeMessage(v any, md protoreflect.MessageDescriptor, p fieldPath) (any, error) {
	if md.FullName() == durationName {
		return normalizeDuration(v, p)
	}
	if md.FullName().Parent() == "google.protobuf" {
		// Other well-known types have their own JSON forms; protojson's message
		// about them is precise enough.
		return v, nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, &FieldError{Field: p.String(), Detail: fmt.Sprintf("must be an object (a %s), not %s", md.Name(), jsonKind(v))}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	oneofs := map[protoreflect.FullName]string{}
	for _, k := range keys {
		fd := md.Fields().ByJSONName(k)
		if fd == nil {
			fd = md.Fields().ByTextName(k)
		}
		if fd == nil {
			return nil, &FieldError{Field: p.child(k).String(), Detail: "unknown field" + suggestField(md, k)}
		}
		fp := p.child(fd.JSONName())
		val := obj[k]
		if val == nil {
			continue
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if other, ok := oneofs[od.FullName()]; ok {
				return nil, &FieldError{Field: fp.String(), Detail: fmt.Sprintf("must not be set together with %q (only one of them may be set)", other)}
			}
			oneofs[od.FullName()] = fd.JSONName()
		}
		if fd.IsList() {
			list, ok := val.([]any)
			if !ok {
				return nil, &FieldError{Field: fp.String(), Detail: fmt.Sprintf("must be a list, not %s", jsonKind(val))}
			}
			for i, elem := range list {
				n, err := normalizeValue(elem, fd, fp.at(i))
				if err != nil {
					return nil, err
				}
				list[i] = n
			}
			continue
		}
		n, err := normalizeValue(val, fd, fp)
		if err != nil {
			return nil, err
		}
		obj[k] = n
	}
	return obj, nil
}

// normalizeValue checks v, the JSON form of one (non-list) value of field fd, and
// returns it normalized.
func normalizeValue(v any, fd protoreflect.FieldDescriptor, p fieldPath) (any, error) {
	bad := func(format string, args ...any) (any, error) {
		return nil, &FieldError{Field: p.String(), Detail: fmt.Sprintf(format, args...)}
	}
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return normalizeMessage(v, fd.Message(), p)
	case protoreflect.EnumKind:
		switch e := v.(type) {
		case string:
			if fd.Enum().Values().ByName(protoreflect.Name(e)) == nil {
				return bad("unknown value %q, want one of %s", e, enumNames(fd.Enum()))
			}
		case json.Number:
		default:
			return bad("must be one of %s, not %s", enumNames(fd.Enum()), jsonKind(v))
		}
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			return bad("must be true or false, not %s", jsonKind(v))
		}
	case protoreflect.StringKind:
		if _, ok := v.(string); !ok {
			return bad("must be a string, not %s", jsonKind(v))
		}
	case protoreflect.BytesKind:
		s, ok := v.(string)
		if !ok {
			return bad("must be a base64 string, not %s", jsonKind(v))
		}
		if !isBase64(s) {
			return bad("must be base64-encoded")
		}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		var text string
		switch n := v.(type) {
		case json.Number:
			text = n.String()
		case string:
			text = n
		default:
			return bad("must be a number, not %s", jsonKind(v))
		}
		if problem := checkInteger(text, fd.Kind()); problem != "" {
			return bad("%s", problem)
		}
	}
	return v, nil
}

// checkInteger returns what keeps text from being a value of an integer field of
// kind k, or "".
func checkInteger(text string, k protoreflect.Kind) string {
	bits := 64
	switch k {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		bits = 32
	}
	signed := true
	switch k {
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		signed = false
	}
	var err error
	if signed {
		_, err = strconv.ParseInt(text, 10, bits)
	} else {
		if strings.HasPrefix(text, "-") {
			return "must not be negative, got " + text
		}
		_, err = strconv.ParseUint(text, 10, bits)
	}
	switch {
	case errors.Is(err, strconv.ErrRange):
		return fmt.Sprintf("%s is out of range for a %d-bit integer", text, bits)
	case err != nil:
		return fmt.Sprintf("must be a whole number, got %s", text)
	}
	return ""
}

// isBase64 reports whether s is base64 in one of the forms protojson accepts.
func isBase64(s string) bool {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if _, err := enc.DecodeString(s); err == nil {
			return true
		}
	}
	return false
}

// protojsonDuration matches the protojson form of a duration, e.g. "-1.5s".
var protojsonDuration = regexp.MustCompile(`^-?\d+(\.\d{1,9})?s$`)

// normalizeDuration converts a Go duration string ("1m30s") to the protojson form
// ("90s"). Strings already in the protojson form are returned as they are, even
// when too long for a Go duration.
func normalizeDuration(v any, p fieldPath) (any, error) {
	s, ok := v.(string)
	if !ok {
		return nil, &FieldError{Field: p.String(), Detail: fmt.Sprintf(`must be a duration string such as "5s" or "250ms", not %s`, jsonKind(v))}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if protojsonDuration.MatchString(s) {
			return s, nil
		}
		return nil, &FieldError{Field: p.String(), Detail: fmt.Sprintf(`invalid duration %q, want a number with a unit such as "5s", "250ms" or "1m30s"`, s)}
	}
	return protojsonDurationString(d), nil
}

// protojsonDurationString formats d in the protojson form, e.g. "-1.500000000s".
func protojsonDurationString(d time.Duration) string {
	sign := ""
	if d < 0 {
		sign = "-"
	}
	secs, nanos := d/time.Second, d%time.Second
	if secs < 0 {
		secs = -secs
	}
	if nanos < 0 {
		nanos = -nanos
	}
	if nanos == 0 {
		return fmt.Sprintf("%s%ds", sign, secs)
	}
	return fmt.Sprintf("%s%d.%09ds", sign, secs, nanos)
}

// goDurations rewrites, in v (the JSON form of a message of type md), durations
// from the protojson form to the Go form, when they fit a Go duration.
func goDurations(v any, md protoreflect.MessageDescriptor) any {
	if md.FullName() == durationName {
		s, ok := v.(string)
		if !ok || !protojsonDuration.MatchString(s) {
			return v
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return v
		}
		return d.String()
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return v
	}
	for k, val := range obj {
		fd := md.Fields().ByJSONName(k)
		if fd == nil || fd.Message() == nil {
			continue
		}
		if list, ok := val.([]any); ok && fd.IsList() {
			for i := range list {
				list[i] = goDurations(list[i], fd.Message())
			}
			continue
		}
		obj[k] = goDurations(val, fd.Message())
	}
	return obj
}

// jsonKind describes the JSON type of v for error messages.
func jsonKind(v any) string {
	switch x := v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return fmt.Sprintf("the string %q", x)
	case json.Number:
		return "the number " + x.String()
	case bool:
		return fmt.Sprintf("%t", x)
	case nil:
		return "null"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// enumNames lists the values of an enum except its UNSPECIFIED zero value.
func enumNames(ed protoreflect.EnumDescriptor) string {
	var names []string
	for i := 0; i < ed.Values().Len(); i++ {
		v := ed.Values().Get(i)
		if v.Number() == 0 {
			continue
		}
		names = append(names, string(v.Name()))
	}
	return strings.Join(names, ", ")
}

// suggestField returns ` (did you mean "x"?)` when md has a field whose JSON name
// is within two edits of name (ignoring case and underscores), else "".
func suggestField(md protoreflect.MessageDescriptor, name string) string {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }
	best, bestDist := "", 3
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		if d := editDistance(norm(fd.JSONName()), norm(name)); d < bestDist {
			best, bestDist = fd.JSONName(), d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
