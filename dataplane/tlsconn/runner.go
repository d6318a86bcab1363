package tlsconn

import "sync/atomic"

// Handshake goroutines are kept for the next handshake instead of exiting:
// crypto/tls's handshake needs a stack of some tens of KB (the ECDSA
// signature and the key exchange), and a new goroutine starts from a few KB
// and grows by copying its stack (and adjusting every frame's pointers) each
// time it doubles. Under a load of full handshakes that copying took about 4%
// of a flax-uring process's CPU (runtime.newstack, perf), and the stacks
// freed by exiting goroutines went back to the OS and were faulted in again.
// A goroutine that finished a handshake waits for the next one; at most
// MaxIdleRunners wait (a handshake finds one waiting, or starts a new one),
// so idle goroutines are bounded, and the garbage collector shrinks the
// stacks of those that stay idle.

// MaxIdleRunners is how many finished handshake goroutines wait for the
// next handshake, process-wide; one more exits.
const MaxIdleRunners = 256

// runners hands a handshake to an idle goroutine (unbuffered: a send
// succeeds only when one is waiting).
var runners = make(chan *handshake)

// maxIdleRunners is MaxIdleRunners (tests lower it).
var maxIdleRunners atomic.Int32

func init() { maxIdleRunners.Store(MaxIdleRunners) }

var (
	idleRunners    atomic.Int32 // goroutines waiting in runner
	runnersStarted atomic.Uint64
)

// startHandshake runs h's handshake on an idle handshake goroutine, or on a
// new one.
func startHandshake(h *handshake) {
	select {
	case runners <- h:
	default:
		runnersStarted.Add(1)
		go runner(h)
	}
}

// runner runs h's handshake, then the handshakes handed to it, until there
// are MaxIdleRunners idle goroutines besides it.
func runner(h *handshake) {
	for {
		h.run() // h is dead from here: an idle runner does not keep it alive
		if idleRunners.Add(1) > maxIdleRunners.Load() {
			idleRunners.Add(-1)
			return
		}
		h = <-runners
		idleRunners.Add(-1)
	}
}
