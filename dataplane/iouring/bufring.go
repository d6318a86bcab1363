//go:build linux

package iouring

import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	ioringRegisterPbufRing   = 22 // IORING_REGISTER_PBUF_RING
	ioringUnregisterPbufRing = 23 // IORING_UNREGISTER_PBUF_RING
	maxBufRingEntries        = 32768
)

// bufEntry mirrors struct io_uring_buf. The ring's tail shares storage with
// the resv field of entry 0, so entries are written field by field and resv
// is never touched except through publish.
type bufEntry struct {
	addr uint64
	len  uint32
	bid  uint16
	resv uint16
}

// bufReg mirrors struct io_uring_buf_reg.
type bufReg struct {
	ringAddr    uint64
	ringEntries uint32
	bgid        uint16
	flags       uint16
	resv        [3]uint64
}

// BufRing is a provided-buffer ring registered with IORING_REGISTER_PBUF_RING:
// entries buffers of size bytes each, carved from one anonymous mmap region
// together with the ring itself. Operations prepared with IOSQE_BUFFER_SELECT
// on its group id (PrepareRecvMultishot) let the kernel
// pick a buffer when data arrives.
//
// Lifecycle of a buffer: the kernel reports it in a CQE with F_BUFFER; the
// application takes it with Buffer, uses it (it may send straight from it),
// then gives it back with Recycle (or Stage + Publish for a batch). Every
// buffer reported in a CQE must be taken and recycled exactly once, even on
// paths that discard the data.
//
// A BufRing is registered and used on the ring's owner thread only.
type BufRing struct {
	r      *Ring
	mem    []byte
	ents   []bufEntry
	bufs   []byte
	base   uintptr
	bgid   uint16
	mask   uint16
	count  uint32
	size   uint32
	tail   uint16
	staged int
	nheld  int
	held   []bool
}

// NewBufRing maps entries buffers of size bytes and registers them with the
// kernel as buffer group bgid. entries must be a power of two no larger than
// 32768. All buffers start out available to the kernel.
func (r *Ring) NewBufRing(bgid uint16, entries int, size int) (*BufRing, error) {
	return r.newBufRing(bgid, entries, size, unix.MAP_POPULATE)
}

// ReserveBufRing is NewBufRing for large buffers mostly left unused: the
// buffers' memory is only reserved (MAP_NORESERVE, no MAP_POPULATE), and a
// page takes memory when the kernel first writes into it. A ring of 64 KiB
// buffers that receives small datagrams keeps about a page per buffer.
func (r *Ring) ReserveBufRing(bgid uint16, entries int, size int) (*BufRing, error) {
	return r.newBufRing(bgid, entries, size, unix.MAP_NORESERVE)
}

func (r *Ring) newBufRing(bgid uint16, entries int, size int, flags int) (*BufRing, error) {
	if r.closed {
		return nil, fmt.Errorf("uring: new buffer ring: %w", ErrClosed)
	}
	if entries <= 0 || entries > maxBufRingEntries || entries&(entries-1) != 0 {
		return nil, fmt.Errorf("uring: new buffer ring: entries %d is not a power of two in [1, %d]",
			entries, maxBufRingEntries)
	}
	if size <= 0 || size > 1<<30 {
		return nil, fmt.Errorf("uring: new buffer ring: invalid buffer size %d", size)
	}
	for _, b := range r.bufRings {
		if b.bgid == bgid {
			return nil, fmt.Errorf("uring: new buffer ring: group %d already registered", bgid)
		}
	}
	page := os.Getpagesize()
	ringBytes := (entries*int(unsafe.Sizeof(bufEntry{})) + page - 1) &^ (page - 1)
	total := ringBytes + entries*size
	mem, err := unix.Mmap(-1, 0, total, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|flags)
	if err != nil {
		return nil, fmt.Errorf("uring: new buffer ring: mmap %d bytes: %w", total, err)
	}
	b := &BufRing{
		r:     r,
		mem:   mem,
		ents:  unsafe.Slice((*bufEntry)(unsafe.Pointer(unsafe.SliceData(mem))), entries),
		bufs:  mem[ringBytes:],
		bgid:  bgid,
		mask:  uint16(entries - 1),
		count: uint32(entries),
		size:  uint32(size),
		held:  make([]bool, entries),
	}
	b.base = uintptr(unsafe.Pointer(unsafe.SliceData(b.bufs)))
	reg := bufReg{
		ringAddr:    uint64(uintptr(unsafe.Pointer(unsafe.SliceData(mem)))),
		ringEntries: uint32(entries),
		bgid:        bgid,
	}
	_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.Fd()), ioringRegisterPbufRing,
		uintptr(unsafe.Pointer(&reg)), 1, 0, 0)
	if errno != 0 {
		_ = unix.Munmap(mem)
		err := fmt.Errorf("uring: new buffer ring: io_uring_register(PBUF_RING, group %d): %w", bgid, errno)
		if errno == unix.EINVAL || errno == unix.ENOSYS {
			err = fmt.Errorf("%w (%w: provided buffer rings need Linux 5.19+)", err, ErrUnsupported)
		}
		return nil, err
	}
	for i := 0; i < entries; i++ {
		b.write(uint16(i))
	}
	b.publish()
	r.bufRings = append(r.bufRings, b)
	return b, nil
}

// write fills the entry at the current tail with buffer bid and advances the
// private tail without publishing it.
func (b *BufRing) write(bid uint16) {
	e := &b.ents[b.tail&b.mask]
	e.addr = uint64(b.base) + uint64(bid)*uint64(b.size)
	e.len = b.size
	e.bid = bid
	b.tail++
	b.staged++
}

// publish makes all written entries visible to the kernel. The kernel reads
// the 16-bit tail (which overlays entry 0's resv field) with acquire
// semantics, so the tail must be stored with release semantics after the
// entries. Go has no 16-bit atomic store, so the 32-bit word holding entry
// 0's bid and the tail is stored atomically instead; entry 0's bid is only
// ever written by this thread and is stored back unchanged.
func (b *BufRing) publish() {
	word := (*uint32)(unsafe.Pointer(&b.ents[0].bid))
	var v [2]uint16 // same memory order as {bid, resv/tail}
	v[0] = b.ents[0].bid
	v[1] = b.tail
	atomic.StoreUint32(word, *(*uint32)(unsafe.Pointer(&v)))
	b.staged = 0
}

// Available returns how many buffers the kernel can currently pick from.
func (b *BufRing) Available() int { return int(b.count) - b.nheld - b.staged }

// Held returns how many buffers the application currently holds.
func (b *BufRing) Held() int { return b.nheld }

// Buffer takes the provided buffer reported by c: it returns the c.Res bytes
// the kernel wrote (the slice's capacity is the whole buffer) and the buffer
// id to pass to Recycle. ok is false when c carries no buffer. The memory
// stays valid, and is not reused by the kernel, until the buffer is recycled.
func (b *BufRing) Buffer(c CQE) (buf []byte, bid uint16, ok bool) {
	if !c.HasBuffer() || b.mem == nil {
		return nil, 0, false
	}
	bid = c.BufferID()
	if uint32(bid) >= b.count {
		return nil, 0, false
	}
	if !b.held[bid] {
		b.held[bid] = true
		b.nheld++
	}
	n := int(c.Res)
	if n < 0 {
		n = 0
	}
	return b.Bytes(bid, n), bid, true
}

// Bytes returns the first n bytes of buffer bid (capacity: the whole buffer)
// without changing its ownership. n is clamped to the buffer size.
func (b *BufRing) Bytes(bid uint16, n int) []byte {
	if uint32(bid) >= b.count || b.mem == nil {
		return nil
	}
	if n < 0 {
		n = 0
	}
	if n > int(b.size) {
		n = int(b.size)
	}
	off := int(bid) * int(b.size)
	return b.bufs[off : off+n : off+int(b.size)]
}

// Recycle hands buffer bid back to the kernel immediately. It fails with
// ErrBufferNotHeld if the buffer was not taken with Buffer or was already
// recycled.
func (b *BufRing) Recycle(bid uint16) error {
	if err := b.Stage(bid); err != nil {
		return err
	}
	b.publish()
	return nil
}

// Stage queues buffer bid for return to the kernel without publishing it;
// call Publish once after staging a batch.
func (b *BufRing) Stage(bid uint16) error {
	if b.mem == nil {
		return fmt.Errorf("uring: recycle buffer %d: %w", bid, ErrClosed)
	}
	if uint32(bid) >= b.count || !b.held[bid] {
		return fmt.Errorf("uring: recycle buffer %d of group %d: %w", bid, b.bgid, ErrBufferNotHeld)
	}
	b.held[bid] = false
	b.nheld--
	b.write(bid)
	return nil
}

// Publish makes all staged buffers available to the kernel.
func (b *BufRing) Publish() {
	if b.staged > 0 && b.mem != nil {
		b.publish()
	}
}

func (b *BufRing) containsRange(p, n uintptr) bool {
	return b.mem != nil && p >= b.base && n <= uintptr(len(b.bufs)) && p-b.base <= uintptr(len(b.bufs))-n
}

func (b *BufRing) unregister() {
	if b.mem == nil || b.r.closed {
		return
	}
	reg := bufReg{bgid: b.bgid}
	_, _, _ = unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(b.r.Fd()), ioringUnregisterPbufRing,
		uintptr(unsafe.Pointer(&reg)), 1, 0, 0)
}

func (b *BufRing) unmap() error {
	if b.mem == nil {
		return nil
	}
	err := unix.Munmap(b.mem)
	b.mem, b.ents, b.bufs, b.base = nil, nil, nil, 0
	if err != nil {
		return fmt.Errorf("uring: unmap buffer ring %d: %w", b.bgid, err)
	}
	return nil
}

// Close unregisters the buffer group and unmaps its memory. No operation
// selecting from the group may be in flight and no taken buffer may be used
// afterwards. Ring.Close closes all buffer rings itself.
func (b *BufRing) Close() error {
	if b.mem == nil {
		return nil
	}
	b.unregister()
	err := b.unmap()
	rs := b.r.bufRings
	for i, x := range rs {
		if x == b {
			b.r.bufRings = append(rs[:i], rs[i+1:]...)
			break
		}
	}
	return err
}
