package tlsconn

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// ProbeKTLS reports whether the kernel offers the "tls" upper layer protocol:
// it sets TCP_ULP "tls" on a connected loopback socket (which may load the
// module). nil means EnableKTLS can work; otherwise the error says why not.
func ProbeKTLS() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return err
	}
	defer c.Close()
	if a := <-accepted; a != nil {
		defer a.Close()
	}
	return setULP(c.(*net.TCPConn))
}

func setULP(c *net.TCPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_ULP, "tls")
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("tlsconn: setsockopt TCP_ULP tls: %w", serr)
	}
	return nil
}

// EnableKTLS moves a record-layer connection's protection to the kernel on
// its socket fd: TCP_ULP "tls", then TLS_TX and TLS_RX. Afterwards the worker
// reads and writes plaintext on fd and the Conn is done with. Records the
// kernel cannot handle itself (KeyUpdate, alerts) then arrive as control
// messages: that handling is not written yet, so this stays off the engines.
func (c *Conn) EnableKTLS(fd int) error {
	tx, rx, err := c.KTLSCryptoInfo()
	if err != nil {
		return err
	}
	if err := unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_ULP, "tls"); err != nil {
		return fmt.Errorf("tlsconn: setsockopt TCP_ULP tls: %w", err)
	}
	if err := unix.SetsockoptString(fd, unix.SOL_TLS, tlsTX, string(tx)); err != nil {
		return fmt.Errorf("tlsconn: setsockopt TLS_TX: %w", err)
	}
	if err := unix.SetsockoptString(fd, unix.SOL_TLS, tlsRX, string(rx)); err != nil {
		return fmt.Errorf("tlsconn: setsockopt TLS_RX: %w", err)
	}
	c.mode, c.err = modeFailed, errKernelTLS
	return nil
}

var errKernelTLS = errors.New("tlsconn: records are protected by the kernel")
