package http2

// HPACK (RFC 7541): a decoder with a bounded dynamic table that decodes a
// header block into a caller-owned HeaderList, and an encoder that never
// adds to the peer's dynamic table (static-table indexes and literals
// without indexing), so it keeps no per-connection table.

type staticEntry struct{ name, value string }

// staticTable is RFC 7541 Appendix A; index 1 is staticTable[0].
var staticTable = [61]staticEntry{
	{":authority", ""},
	{":method", "GET"},
	{":method", "POST"},
	{":path", "/"},
	{":path", "/index.html"},
	{":scheme", "http"},
	{":scheme", "https"},
	{":status", "200"},
	{":status", "204"},
	{":status", "206"},
	{":status", "304"},
	{":status", "400"},
	{":status", "404"},
	{":status", "500"},
	{"accept-charset", ""},
	{"accept-encoding", "gzip, deflate"},
	{"accept-language", ""},
	{"accept-ranges", ""},
	{"accept", ""},
	{"access-control-allow-origin", ""},
	{"age", ""},
	{"allow", ""},
	{"authorization", ""},
	{"cache-control", ""},
	{"content-disposition", ""},
	{"content-encoding", ""},
	{"content-language", ""},
	{"content-length", ""},
	{"content-location", ""},
	{"content-range", ""},
	{"content-type", ""},
	{"cookie", ""},
	{"date", ""},
	{"etag", ""},
	{"expect", ""},
	{"expires", ""},
	{"from", ""},
	{"host", ""},
	{"if-match", ""},
	{"if-modified-since", ""},
	{"if-none-match", ""},
	{"if-range", ""},
	{"if-unmodified-since", ""},
	{"last-modified", ""},
	{"link", ""},
	{"location", ""},
	{"max-forwards", ""},
	{"proxy-authenticate", ""},
	{"proxy-authorization", ""},
	{"range", ""},
	{"referer", ""},
	{"refresh", ""},
	{"retry-after", ""},
	{"server", ""},
	{"set-cookie", ""},
	{"strict-transport-security", ""},
	{"transfer-encoding", ""},
	{"user-agent", ""},
	{"vary", ""},
	{"via", ""},
	{"www-authenticate", ""},
}

// staticNameIndex maps a static-table name to its first index (1-based).
var staticNameIndex = func() map[string]uint8 {
	m := make(map[string]uint8, len(staticTable))
	for i := len(staticTable) - 1; i >= 0; i-- {
		m[staticTable[i].name] = uint8(i + 1)
	}
	return m
}()

// entryOverhead is the per-entry overhead HPACK counts in table and header
// list sizes (RFC 7541 section 4.1, RFC 9113 section 6.5.2).
const entryOverhead = 32

// Errors found while decoding a header block: all are connection errors of
// type COMPRESSION_ERROR (RFC 9113 section 4.3).
var (
	errHpackTruncated   = connErr(ErrCodeCompression, "hpack: truncated header block")
	errHpackInteger     = connErr(ErrCodeCompression, "hpack: integer overflow")
	errHpackIndex       = connErr(ErrCodeCompression, "hpack: invalid table index")
	errHpackHuffman     = connErr(ErrCodeCompression, "hpack: invalid huffman string")
	errHpackSizeUpdate  = connErr(ErrCodeCompression, "hpack: table size update above the advertised limit")
	errHpackLateUpdate  = connErr(ErrCodeCompression, "hpack: table size update after a field")
	errHpackStringLarge = connErr(ErrCodeCompression, "hpack: string longer than the header block")
)

// HeaderList is a decoded header block: the fields in order, their bytes in
// a buffer the list owns and reuses. A Conn owns one and reuses it for every
// block, so the fields are valid until the next call to Conn.Next.
type HeaderList struct {
	buf    []byte
	fields []hfield
	// size is the header list size as SETTINGS_MAX_HEADER_LIST_SIZE counts
	// it: name and value lengths plus 32 per field.
	size     uint32
	overflow bool
}

type hfield struct {
	off       uint32
	nameLen   uint32
	valueLen  uint32
	sensitive bool
}

// Reset empties the list, keeping its memory.
func (h *HeaderList) Reset() {
	h.buf = h.buf[:0]
	h.fields = h.fields[:0]
	h.size = 0
	h.overflow = false
}

// Len returns the number of fields.
func (h *HeaderList) Len() int { return len(h.fields) }

// Field returns field i's name and value. Names are as the peer sent them;
// Conn has checked that they are lowercase.
func (h *HeaderList) Field(i int) (name, value []byte) {
	f := h.fields[i]
	return h.buf[f.off : f.off+f.nameLen], h.buf[f.off+f.nameLen : f.off+f.nameLen+f.valueLen]
}

// Sensitive reports whether field i was sent as never-indexed (RFC 7541
// section 6.2.3); a proxy forwarding it should keep it never-indexed.
func (h *HeaderList) Sensitive(i int) bool { return h.fields[i].sensitive }

// Get returns the value of the first field named name.
func (h *HeaderList) Get(name string) ([]byte, bool) {
	for i := range h.fields {
		n, v := h.Field(i)
		if string(n) == name {
			return v, true
		}
	}
	return nil, false
}

// Size returns the header list size (names, values and 32 bytes per field).
func (h *HeaderList) Size() uint32 { return h.size }

// Add appends a field; tests and callers building lists use it.
func (h *HeaderList) Add(name, value string) {
	h.addField(len(h.buf), false)
	h.buf = append(h.buf, name...)
	h.buf = append(h.buf, value...)
	f := &h.fields[len(h.fields)-1]
	f.nameLen, f.valueLen = uint32(len(name)), uint32(len(value))
	h.size += uint32(len(name)+len(value)) + entryOverhead
}

func (h *HeaderList) addField(off int, sensitive bool) {
	h.fields = append(h.fields, hfield{off: uint32(off), sensitive: sensitive})
}

// Decoder decodes HPACK header blocks. Its dynamic table is bounded by the
// SETTINGS_HEADER_TABLE_SIZE this endpoint advertises, and the decoded list
// by a maximum list size: past it the decoder keeps decoding (the table
// must stay in step with the peer's encoder) but stores no more fields, so
// a block that expands by referencing table entries costs no memory (an
// "HPACK bomb").
type Decoder struct {
	dyn dynTable
	// allowed is the largest table size the peer may choose (our
	// SETTINGS_HEADER_TABLE_SIZE); dyn.max is the size it chose.
	allowed     uint32
	maxListSize uint32
}

// NewDecoder returns a decoder whose table may grow to tableSize bytes and
// which refuses header lists larger than maxListSize.
func NewDecoder(tableSize, maxListSize uint32) *Decoder {
	d := &Decoder{}
	d.Init(tableSize, maxListSize)
	return d
}

// Init (re)initializes d, keeping the table's memory when it is big enough.
func (d *Decoder) Init(tableSize, maxListSize uint32) {
	d.allowed = tableSize
	d.maxListSize = maxListSize
	d.dyn.reset(tableSize)
}

// SetAllowedTableSize changes the largest table size the peer may use (a
// new SETTINGS_HEADER_TABLE_SIZE, once acknowledged), at most the size
// given to Init. A smaller limit shrinks the table at once.
func (d *Decoder) SetAllowedTableSize(n uint32) {
	n = min(n, d.dyn.limit) // the table never outgrows what Init sized
	d.allowed = n
	if d.dyn.max > n {
		d.dyn.setMax(n)
	}
}

// TableSize returns the current dynamic table size in HPACK bytes.
func (d *Decoder) TableSize() uint32 { return d.dyn.size }

// Decode decodes a complete header block into h (which it resets first).
// It returns nil; errHeaderListTooLarge (a stream error) when the list
// exceeds the maximum list size, after decoding the whole block; or a
// COMPRESSION_ERROR connection error.
func (d *Decoder) Decode(block []byte, h *HeaderList) error {
	h.Reset()
	sawField := false
	for len(block) > 0 {
		b := block[0]
		switch {
		case b&0x80 != 0: // indexed field
			idx, rest, err := readVarInt(block, 7)
			if err != nil {
				return err
			}
			block = rest
			if err := d.emitIndexed(h, idx); err != nil {
				return err
			}
			sawField = true
		case b&0xe0 == 0x20: // dynamic table size update
			if sawField {
				return errHpackLateUpdate
			}
			n, rest, err := readVarInt(block, 5)
			if err != nil {
				return err
			}
			block = rest
			if n > uint64(d.allowed) {
				return errHpackSizeUpdate
			}
			d.dyn.setMax(uint32(n))
		default: // literal: with incremental indexing (01), never indexed (0001), without indexing (0000)
			prefix, index, sensitive := uint8(4), false, b&0xf0 == 0x10
			if b&0xc0 == 0x40 {
				prefix, index = 6, true
			}
			rest, err := d.literal(h, block, prefix, index, sensitive)
			if err != nil {
				return err
			}
			block = rest
			sawField = true
		}
	}
	if h.overflow {
		return errHeaderListTooLarge
	}
	return nil
}

func (d *Decoder) emitIndexed(h *HeaderList, idx uint64) error {
	name, value, ok := d.lookup(idx)
	if !ok {
		return errHpackIndex
	}
	if !d.account(h, len(name)+len(value)) {
		return nil
	}
	h.addField(len(h.buf), false)
	h.buf = append(h.buf, name...)
	h.buf = append(h.buf, value...)
	f := &h.fields[len(h.fields)-1]
	f.nameLen, f.valueLen = uint32(len(name)), uint32(len(value))
	return nil
}

// account adds a field of n name and value bytes to the list size and
// reports whether the field fits.
func (d *Decoder) account(h *HeaderList, n int) bool {
	h.size = uint32(min(uint64(h.size)+uint64(n)+entryOverhead, 1<<32-1)) // saturates
	if h.overflow || h.size > d.maxListSize {
		h.overflow = true
		return false
	}
	return true
}

func (d *Decoder) literal(h *HeaderList, block []byte, prefix uint8, index, sensitive bool) ([]byte, error) {
	idx, block, err := readVarInt(block, prefix)
	if err != nil {
		return nil, err
	}
	start := len(h.buf)
	if idx != 0 {
		name, _, ok := d.lookup(idx)
		if !ok {
			return nil, errHpackIndex
		}
		h.buf = append(h.buf, name...)
	} else if h.buf, block, err = readString(h.buf, block); err != nil {
		return nil, err
	}
	nameLen := len(h.buf) - start
	if h.buf, block, err = readString(h.buf, block); err != nil {
		return nil, err
	}
	valueLen := len(h.buf) - start - nameLen
	if index {
		d.dyn.add(h.buf[start:start+nameLen], h.buf[start+nameLen:])
	}
	if !d.account(h, nameLen+valueLen) {
		h.buf = h.buf[:start]
		return block, nil
	}
	h.fields = append(h.fields, hfield{off: uint32(start), nameLen: uint32(nameLen), valueLen: uint32(valueLen), sensitive: sensitive})
	return block, nil
}

func (d *Decoder) lookup(idx uint64) (name, value []byte, ok bool) {
	if idx == 0 {
		return nil, nil, false
	}
	if idx <= uint64(len(staticTable)) {
		e := &staticTable[idx-1]
		return stringBytes(e.name), stringBytes(e.value), true
	}
	return d.dyn.get(idx - uint64(len(staticTable)))
}

// readVarInt reads an HPACK integer with an n-bit prefix (RFC 7541 section
// 5.1). Values are limited to 2^32-1, far above any limit the codec uses.
func readVarInt(b []byte, n uint8) (uint64, []byte, error) {
	if len(b) == 0 {
		return 0, nil, errHpackTruncated
	}
	mask := uint64(1)<<n - 1
	v := uint64(b[0]) & mask
	b = b[1:]
	if v < mask {
		return v, b, nil
	}
	var shift uint
	for i := 0; i < len(b); i++ {
		c := b[i]
		v += uint64(c&0x7f) << shift
		if v > 1<<32-1 {
			return 0, nil, errHpackInteger
		}
		if c&0x80 == 0 {
			return v, b[i+1:], nil
		}
		shift += 7
		if shift > 28 {
			return 0, nil, errHpackInteger
		}
	}
	return 0, nil, errHpackTruncated
}

// readString appends the string literal at the start of b to dst.
func readString(dst, b []byte) ([]byte, []byte, error) {
	if len(b) == 0 {
		return dst, nil, errHpackTruncated
	}
	huff := b[0]&0x80 != 0
	n, b, err := readVarInt(b, 7)
	if err != nil {
		return dst, nil, err
	}
	if n > uint64(len(b)) {
		return dst, nil, errHpackStringLarge
	}
	s := b[:n]
	if !huff {
		return append(dst, s...), b[n:], nil
	}
	dst, ok := appendHuffmanDecoded(dst, s)
	if !ok {
		return dst, nil, errHpackHuffman
	}
	return dst, b[n:], nil
}

// appendVarInt appends v as an HPACK integer with an n-bit prefix; first
// holds the representation's flag bits above the prefix.
func appendVarInt(dst []byte, n uint8, first byte, v uint64) []byte {
	mask := uint64(1)<<n - 1
	if v < mask {
		return append(dst, first|byte(v))
	}
	dst = append(dst, first|byte(mask))
	v -= mask
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}

// dynTable is the decoder's dynamic table (RFC 7541 section 2.3.2): a ring
// of entries whose bytes live, oldest first, in one buffer that is compacted
// when the newest entry would run past its end. It allocates its memory
// once, on the first insertion, and never grows past twice the limit.
type dynTable struct {
	buf  []byte
	ents []dynEntry // ring; oldest at head
	head int
	n    int
	size uint32 // sum of entry sizes (lengths plus 32)
	max  uint32
	// limit is the largest max ever allowed; it sizes buf and ents.
	limit uint32
}

type dynEntry struct {
	off, nameLen, valueLen uint32
}

func (t *dynTable) reset(limit uint32) {
	if limit > t.limit {
		t.buf, t.ents = nil, nil
	}
	t.limit = max(limit, t.limit)
	t.buf = t.buf[:0]
	t.head, t.n, t.size, t.max = 0, 0, 0, limit
}

func (t *dynTable) setMax(n uint32) {
	t.max = n
	t.evict(0)
}

// evict removes the oldest entries until an entry of size need fits.
func (t *dynTable) evict(need uint32) {
	for t.n > 0 && t.size+need > t.max {
		e := t.ents[t.head]
		t.size -= e.nameLen + e.valueLen + entryOverhead
		t.head = (t.head + 1) % len(t.ents)
		t.n--
	}
	if t.n == 0 {
		t.buf = t.buf[:0]
	}
}

func (t *dynTable) add(name, value []byte) {
	sz := uint32(len(name)+len(value)) + entryOverhead
	if sz > t.max {
		// An entry larger than the table empties it (RFC 7541 section 4.4).
		t.evict(t.max + 1)
		return
	}
	t.evict(sz)
	if t.ents == nil {
		t.ents = make([]dynEntry, t.limit/entryOverhead+1)
		t.buf = make([]byte, 0, 2*t.limit)
	}
	n := len(name) + len(value)
	if len(t.buf)+n > cap(t.buf) {
		t.compact()
	}
	off := uint32(len(t.buf))
	t.buf = append(t.buf, name...)
	t.buf = append(t.buf, value...)
	t.ents[(t.head+t.n)%len(t.ents)] = dynEntry{off: off, nameLen: uint32(len(name)), valueLen: uint32(len(value))}
	t.n++
	t.size += sz
}

// compact moves the live entries' bytes to the start of buf.
func (t *dynTable) compact() {
	if t.n == 0 {
		t.buf = t.buf[:0]
		return
	}
	start := t.ents[t.head].off
	copy(t.buf, t.buf[start:])
	t.buf = t.buf[:uint32(len(t.buf))-start]
	for i := range t.n {
		t.ents[(t.head+i)%len(t.ents)].off -= start
	}
}

// find returns the index (1 being the newest) of the entry holding name
// and value (full true), else of the newest entry holding name, else 0.
func (t *dynTable) find(name, value []byte) (i uint64, full bool) {
	for k := 1; k <= t.n; k++ {
		e := &t.ents[(t.head+t.n-k)%len(t.ents)]
		if int(e.nameLen) != len(name) || string(t.buf[e.off:e.off+e.nameLen]) != string(name) {
			continue
		}
		if int(e.valueLen) == len(value) && string(t.buf[e.off+e.nameLen:e.off+e.nameLen+e.valueLen]) == string(value) {
			return uint64(k), true
		}
		if i == 0 {
			i = uint64(k)
		}
	}
	return i, false
}

// get returns entry i, 1 being the newest.
func (t *dynTable) get(i uint64) (name, value []byte, ok bool) {
	if i == 0 || i > uint64(t.n) {
		return nil, nil, false
	}
	e := t.ents[(t.head+t.n-int(i))%len(t.ents)]
	return t.buf[e.off : e.off+e.nameLen], t.buf[e.off+e.nameLen : e.off+e.nameLen+e.valueLen], true
}

// EncoderTableSize is the dynamic table size an Encoder uses (at most the
// peer's SETTINGS_HEADER_TABLE_SIZE): room for the fields a connection
// repeats on every request or response (content-type, user-agent, the
// forwarding fields, gRPC's te and content-type), at half the memory of the
// protocol's default 4096.
const EncoderTableSize = 2048

// Encoder writes HPACK header blocks. It keeps a copy of the peer decoder's
// dynamic table: a field seen before is written as one index, and a new
// field that is likely to come again (not a value that changes per message,
// such as content-length, a date or a request id, and not larger than half
// the table) is added to the table with incremental indexing. The table's
// memory comes with the first field added. The size it uses is
// EncoderTableSize or the peer's SETTINGS_HEADER_TABLE_SIZE if smaller,
// announced with a dynamic table size update at the start of the first
// block and of the first block after it changes (RFC 7541 section 4.2).
type Encoder struct {
	lower []byte // scratch for lowercasing names
	tab   dynTable
	// size is the table size in use; low the smallest size the peer's
	// settings allowed since the last block (when it is below size, the
	// block starts with an update to 0 before the one to size); update
	// that a size update is owed.
	size, low uint32
	update    bool
	ready     bool // Reset ran: the fields above are set
}

// Reset makes the encoder start a new connection, whose peer allows the
// default table size until its SETTINGS say otherwise.
func (e *Encoder) Reset() {
	e.size = min(EncoderTableSize, DefaultHeaderTableSize)
	e.tab.reset(e.size)
	e.low = e.size
	e.update = e.size != DefaultHeaderTableSize
	e.ready = true
}

// SetPeerTableSize applies the peer's SETTINGS_HEADER_TABLE_SIZE: the
// table shrinks at once if need be, and the next block announces it.
func (e *Encoder) SetPeerTableSize(n uint32) {
	if !e.ready {
		e.Reset()
	}
	want := min(n, EncoderTableSize)
	e.low = min(e.low, want)
	if want != e.size {
		e.size = want
		e.tab.setMax(want)
		e.update = true
	}
}

// BeginBlock starts a header block.
func (e *Encoder) BeginBlock(dst []byte) []byte {
	if !e.ready {
		e.Reset()
	}
	if e.update {
		if e.low < e.size {
			// The peer allowed less than size in between: the first
			// update must go at least that low. It goes to 0, emptying
			// the table, because x/net's decoder (grpc-go's) takes a
			// second update only after one that emptied its table.
			dst = append(dst, 0x20)
			e.tab.setMax(0)
			e.tab.setMax(e.size)
		}
		dst = appendVarInt(dst, 5, 0x20, uint64(e.size))
		e.update = false
	}
	e.low = e.size
	return dst
}

// AppendField appends one field. Names are lowercased (HTTP/2 requires
// lowercase names); values are written as given, Huffman-coded when that is
// shorter. A sensitive field is written never-indexed and never enters the
// table.
func (e *Encoder) AppendField(dst, name, value []byte, sensitive bool) []byte {
	if !e.ready {
		e.Reset()
	}
	name = e.lowercase(name)
	idx, exact := staticLookup(name, value)
	if exact && !sensitive {
		return appendVarInt(dst, 7, 0x80, uint64(idx))
	}
	nameIdx := uint64(idx)
	if !sensitive {
		d, full := e.tab.find(name, value)
		if full {
			return appendVarInt(dst, 7, 0x80, uint64(len(staticTable))+d)
		}
		if nameIdx == 0 && d != 0 {
			nameIdx = uint64(len(staticTable)) + d
		}
		if indexable(name, value, e.size) {
			dst = appendVarInt(dst, 6, 0x40, nameIdx)
			if nameIdx == 0 {
				dst = appendString(dst, name)
			}
			dst = appendString(dst, value)
			e.tab.add(name, value)
			return dst
		}
	}
	first := byte(0x00)
	if sensitive {
		first = 0x10
	}
	dst = appendVarInt(dst, 4, first, nameIdx)
	if nameIdx == 0 {
		dst = appendString(dst, name)
	}
	return appendString(dst, value)
}

// indexable reports whether a field is worth a place in a dynamic table of
// size max: small enough, and of a name whose value does not change from
// one message to the next.
func indexable(name, value []byte, max uint32) bool {
	if uint32(len(name)+len(value))+entryOverhead > max/2 {
		return false
	}
	switch string(name) {
	case "content-length", "date", "etag", "last-modified", "expires", "age",
		"if-modified-since", "if-none-match", "location", "set-cookie", "cookie",
		"x-request-id", "traceparent", "tracestate", "x-b3-traceid", "x-b3-spanid",
		"x-b3-parentspanid", "b3", "grpc-timeout", "grpc-message", ":path":
		return false
	}
	return true
}

// AppendFieldString is AppendField for string arguments.
func (e *Encoder) AppendFieldString(dst []byte, name, value string) []byte {
	return e.AppendField(dst, stringBytes(name), stringBytes(value), false)
}

func (e *Encoder) lowercase(name []byte) []byte {
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			e.lower = append(e.lower[:0], name...)
			for j := i; j < len(e.lower); j++ {
				if c := e.lower[j]; 'A' <= c && c <= 'Z' {
					e.lower[j] = c + 'a' - 'A'
				}
			}
			return e.lower
		}
	}
	return name
}

// staticLookup returns the static index of name (0 if none) and whether
// the entry at that index also has the value.
func staticLookup(name, value []byte) (uint8, bool) {
	idx, ok := staticNameIndex[string(name)]
	if !ok {
		return 0, false
	}
	for i := int(idx) - 1; i < len(staticTable) && staticTable[i].name == string(name); i++ {
		if staticTable[i].value == string(value) && (len(value) > 0 || i == int(idx)-1) {
			return uint8(i + 1), true
		}
	}
	return idx, false
}

func appendString(dst, s []byte) []byte {
	if h := huffmanEncodedLen(s); h < len(s) {
		dst = appendVarInt(dst, 7, 0x80, uint64(h))
		return appendHuffman(dst, s)
	}
	dst = appendVarInt(dst, 7, 0, uint64(len(s)))
	return append(dst, s...)
}
