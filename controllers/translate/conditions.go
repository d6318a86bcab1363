package translate

import (
	"cmp"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// maxMessageLength bounds condition messages, well below the API's 32768.
const maxMessageLength = 4096

// condition builds a condition for an object of the given generation.
// LastTransitionTime is left zero for the status writer.
func condition[T, R ~string](typ T, ok bool, reason R, message string, generation int64) metav1.Condition {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	return metav1.Condition{
		Type:               string(typ),
		Status:             status,
		ObservedGeneration: generation,
		Reason:             string(reason),
		Message:            truncate(message),
	}
}

// truncate shortens a condition message to maxMessageLength bytes.
func truncate(msg string) string {
	if len(msg) <= maxMessageLength {
		return msg
	}
	cut := maxMessageLength - len(" (truncated)")
	for cut > 0 && !isRuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + " (truncated)"
}

// isRuneStart reports whether b starts a UTF-8 sequence.
func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// problem is one thing wrong with an object, as a condition reason and a message
// that says what to do about it.
type problem struct {
	reason  string
	message string
}

// problems collects problems of one kind for one condition.
type problems []problem

// add records a problem.
func (ps *problems) add(reason, message string) {
	*ps = append(*ps, problem{reason: reason, message: message})
}

// reason is the reason of the first problem.
func (ps problems) reason() string { return ps[0].reason }

// message joins the messages of all problems.
func (ps problems) message() string {
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = p.message
	}
	return strings.Join(msgs, "; ")
}

// compareStrings orders strings bytewise.
func compareStrings(a, b string) int { return strings.Compare(a, b) }

// key returns the namespaced name of an object.
func key(obj metav1.Object) types.NamespacedName {
	return types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

// compareKeys orders namespaced names by namespace, then name.
func compareKeys(a, b types.NamespacedName) int {
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
}

// compareAge orders objects oldest first, then by namespace and name: the Gateway
// API's tie-break between conflicting objects.
func compareAge(a, b metav1.Object) int {
	return cmp.Or(cmp.Compare(unixNanos(a), unixNanos(b)), compareKeys(key(a), key(b)))
}

// unixNanos is the creation time of obj in nanoseconds since the Unix epoch, or 0
// when it is not set.
func unixNanos(obj metav1.Object) int64 {
	t := obj.GetCreationTimestamp()
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
