package daemon_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"

	"github.com/flaxlb/flax/dataplane/daemon"
	"github.com/flaxlb/flax/dataplane/lb"
)

// An embedded load balancer: round robin over a backend group whose backends change
// at run time through its Pool.
func ExampleDaemon_Pool() {
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "a") }))
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "b") }))
	defer a.Close()
	defer b.Close()
	listen := freeAddr()

	snap, err := lb.HTTPProxy(listen, a.Listener.Addr().String())
	if err != nil {
		panic(err)
	}
	d, err := daemon.New(daemon.Options{Engine: daemon.EngineNetpoll, Workers: 1})
	if err != nil {
		panic(err)
	}
	if _, err := d.Apply(context.Background(), snap); err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go d.Run(ctx)

	pool, err := d.Pool(lb.DefaultGroup)
	if err != nil {
		panic(err)
	}
	fmt.Println(get(listen))
	if err := pool.Add(b.Listener.Addr().String()); err != nil {
		panic(err)
	}
	if err := pool.Remove(a.Listener.Addr().String()); err != nil {
		panic(err)
	}
	fmt.Println(get(listen))
	list, _ := pool.List()
	fmt.Println(len(list), list[0].State)
	// Output:
	// a
	// b
	// 1 ready
}

func get(addr string) string {
	resp, err := http.Get("http://" + addr)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// A TCP proxy on the io_uring engine (the portable engine where the kernel does not
// offer io_uring: Options.Engine auto): every connection to listen is joined to the
// echo backend.
func ExampleDaemon_tcpProxy() {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	listen := freeAddr()
	snap, err := lb.TCPProxy(listen, echo.Addr().String())
	if err != nil {
		panic(err)
	}
	d, err := daemon.New(daemon.Options{})
	if err != nil {
		panic(err)
	}
	if _, err := d.Apply(context.Background(), snap); err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go d.Run(ctx)

	c, err := net.Dial("tcp", listen)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	fmt.Fprint(c, "hello through flax")
	buf := make([]byte, len("hello through flax"))
	if _, err := io.ReadFull(c, buf); err != nil {
		panic(err)
	}
	fmt.Println(string(buf))
	// Output: hello through flax
}
