//go:build !linux

package tlsconn

import "errors"

// ProbeKTLS reports that kernel TLS exists only on Linux.
func ProbeKTLS() error { return errors.ErrUnsupported }

// EnableKTLS is not available off Linux.
func (c *Conn) EnableKTLS(int) error { return errors.ErrUnsupported }
