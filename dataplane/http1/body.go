package http1

import "math"

// Chunked decoder states.
const (
	csSizeStart    uint8 = iota // first hex digit of a chunk size
	csSize                      // more hex digits, BWS, ';' or CR
	csSizeBWS                   // whitespace after the size, before ';'
	csExt                       // chunk extensions, up to CR
	csSizeLF                    // LF ending the chunk-size line
	csData                      // chunk data
	csDataCR                    // CR after chunk data
	csDataLF                    // LF after chunk data
	csTrailerStart              // start of a trailer line or of the final CRLF
	csTrailerName               // trailer field name
	csTrailerValue              // trailer field value, up to CR
	csTrailerLF                 // LF ending a trailer line
	csEndLF                     // LF ending the message
	csDone
)

// maxChunkSizeDigits bounds the hex digits of a chunk size, leading zeros
// included.
const maxChunkSizeDigits = 16

// BodyReader delimits a message body as its bytes arrive, without buffering
// it. Set it up with ForRequest, ForResponse or Reset, then call Feed (to
// forward the body unchanged) or Next (to read the decoded payload) with
// each batch of received bytes. A BodyReader is a plain value and allocates
// nothing; its zero value reads an empty body.
//
// For a chunked body it validates the framing in place: chunk-size lines
// (hex size, optional extensions), the CRLF after each chunk, the trailer
// section and the final CRLF. After an error the connection must be closed:
// bytes already forwarded may have been part of an invalid message.
type BodyReader struct {
	framing   Framing
	state     uint8
	done      bool
	errs      *[numErrCodes]*Error
	err       error
	remaining int64 // bytes left in the body (FramingLength) or chunk
	size      int64 // chunk size being parsed
	digits    int   // hex digits of the size parsed so far
	ext       int   // extension bytes on the current chunk-size line
	trailer   int   // trailer section bytes so far
	maxExt    int
	maxTrail  int
}

// Reset prepares b for a body with framing f; contentLength is the body
// length for FramingLength. Errors are reported with Status 400, as for a
// request body.
func (b *BodyReader) Reset(f Framing, contentLength int64, lim Limits) {
	b.reset(f, contentLength, lim, &requestErrors)
}

// ForRequest prepares b for the body of the parsed request r.
func (b *BodyReader) ForRequest(r *Request, lim Limits) {
	b.reset(r.Framing(), r.ContentLength, lim, &requestErrors)
}

// ForResponse prepares b for the body of the parsed response r; errors are
// reported with Status 502.
func (b *BodyReader) ForResponse(r *Response, lim Limits) {
	b.reset(r.Framing, r.ContentLength, lim, &responseErrors)
}

func (b *BodyReader) reset(f Framing, contentLength int64, lim Limits, errs *[numErrCodes]*Error) {
	lim = lim.Normalized()
	*b = BodyReader{framing: f, errs: errs, maxExt: lim.MaxChunkExtBytes, maxTrail: lim.MaxTrailerBytes}
	switch f {
	case FramingNone:
		b.done = true
	case FramingLength:
		if contentLength <= 0 {
			b.done = true
		}
		b.remaining = contentLength
	}
}

// Framing returns the framing b was set up with.
func (b *BodyReader) Framing() Framing { return b.framing }

// Done reports whether the whole body has been seen.
func (b *BodyReader) Done() bool { return b.done }

// Remaining returns, for FramingLength, the number of body bytes still
// expected.
func (b *BodyReader) Remaining() int64 {
	if b.framing == FramingLength {
		return b.remaining
	}
	return 0
}

// Feed consumes the body bytes at the start of p, which the proxy forwards
// unchanged. It returns how many bytes of p belong to the body: all of them
// unless done is set, in which case p[n:] starts the next message. A
// close-delimited body (FramingClose) is never done; it ends when the peer
// closes the connection. On error n counts the bytes validated before it.
func (b *BodyReader) Feed(p []byte) (n int, done bool, err error) {
	if b.err != nil {
		return 0, false, b.err
	}
	if b.done {
		return 0, true, nil
	}
	switch b.framing {
	case FramingLength:
		n = len(p)
		if int64(n) > b.remaining {
			n = int(b.remaining)
		}
		b.remaining -= int64(n)
		b.done = b.remaining == 0
		return n, b.done, nil
	case FramingChunked:
		n, _, c := b.chunked(p, false)
		if c != errNone {
			b.err = b.errs[c]
			return n, false, b.err
		}
		return n, b.done, nil
	case FramingNone:
		// Only reachable for a zero BodyReader: no body.
		b.done = true
		return 0, true, nil
	}
	return len(p), false, nil
}

// Next decodes the body bytes at the start of p. It consumes n bytes of p and
// returns in data the payload among them (a sub-slice of p, possibly empty);
// for a chunked body it stops after each piece of chunk data, so the caller
// loops while n < len(p) and the body is not done. done and the remaining
// bytes of p are as for Feed.
func (b *BodyReader) Next(p []byte) (n int, data []byte, done bool, err error) {
	if b.err != nil {
		return 0, nil, false, b.err
	}
	if b.done {
		return 0, nil, true, nil
	}
	if b.framing != FramingChunked {
		n, done, err = b.Feed(p)
		return n, p[:n], done, err
	}
	n, data, c := b.chunked(p, true)
	if c != errNone {
		b.err = b.errs[c]
		return n, nil, false, b.err
	}
	return n, data, b.done, nil
}

// chunked runs the chunked-coding state machine over p. With decode set it
// returns after the first piece of chunk data, which it returns in data.
func (b *BodyReader) chunked(p []byte, decode bool) (n int, data []byte, c errCode) {
	i := 0
	for i < len(p) {
		ch := p[i]
		switch b.state {
		case csSizeStart:
			v := unhex(ch)
			if v < 0 {
				return i, nil, errChunkSize
			}
			b.size, b.digits, b.ext = v, 1, 0
			b.state = csSize
		case csSize:
			if v := unhex(ch); v >= 0 {
				if b.digits == maxChunkSizeDigits || b.size > math.MaxInt64>>4 {
					return i, nil, errChunkSizeOverflow
				}
				b.size = b.size<<4 | v
				b.digits++
				break
			}
			switch ch {
			case '\r':
				b.state = csSizeLF
			case ';':
				b.state = csExt
				b.ext = 1
			case ' ', '\t':
				b.state = csSizeBWS
				b.ext = 1
			case '\n':
				return i, nil, errBareLF
			default:
				return i, nil, errChunkSize
			}
		case csSizeBWS:
			switch ch {
			case ' ', '\t':
			case ';':
				b.state = csExt
			default:
				return i, nil, errChunkExt
			}
			if b.ext++; b.ext > b.maxExt {
				return i, nil, errChunkExtTooLong
			}
		case csExt:
			switch {
			case ch == '\r':
				b.state = csSizeLF
			case ch == '\n':
				return i, nil, errBareLF
			case charClass[ch]&cValue == 0:
				return i, nil, errChunkExt
			default:
				if b.ext++; b.ext > b.maxExt {
					return i, nil, errChunkExtTooLong
				}
			}
		case csSizeLF:
			if ch != '\n' {
				return i, nil, errChunkLine
			}
			if b.size == 0 {
				b.state = csTrailerStart
			} else {
				b.state = csData
				b.remaining = b.size
			}
		case csData:
			k := len(p) - i
			if int64(k) > b.remaining {
				k = int(b.remaining)
			}
			b.remaining -= int64(k)
			if b.remaining == 0 {
				b.state = csDataCR
			}
			start := i
			i += k
			if decode {
				return i, p[start:i], errNone
			}
			continue
		case csDataCR:
			if ch != '\r' {
				return i, nil, errChunkDataCRLF
			}
			b.state = csDataLF
		case csDataLF:
			if ch != '\n' {
				return i, nil, errChunkDataCRLF
			}
			b.state = csSizeStart
		default:
			if c := b.trailerByte(ch); c != errNone {
				return i, nil, c
			}
			if b.state == csDone {
				b.done = true
				return i + 1, nil, errNone
			}
		}
		i++
	}
	return i, nil, errNone
}

// trailerByte advances the trailer-section states by one byte.
func (b *BodyReader) trailerByte(ch byte) errCode {
	if b.trailer++; b.trailer > b.maxTrail {
		return errTrailerTooLarge
	}
	switch b.state {
	case csTrailerStart:
		switch {
		case ch == '\r':
			b.state = csEndLF
		case isToken(ch):
			b.state = csTrailerName
		case ch == '\n':
			return errBareLF
		default:
			// Includes SP and HTAB: obs-fold.
			return errTrailer
		}
	case csTrailerName:
		switch {
		case ch == ':':
			b.state = csTrailerValue
		case !isToken(ch):
			return errTrailer
		}
	case csTrailerValue:
		switch {
		case ch == '\r':
			b.state = csTrailerLF
		case ch == '\n':
			return errBareLF
		case charClass[ch]&cValue == 0:
			return errTrailer
		}
	case csTrailerLF:
		if ch != '\n' {
			return errTrailer
		}
		b.state = csTrailerStart
	case csEndLF:
		if ch != '\n' {
			return errTrailer
		}
		b.state = csDone
	}
	return errNone
}
