// Command demo is what `make run` starts: three small HTTP backends on 127.0.0.1:9001-9003
// and flax-dataplane serving examples/standalone.yaml in front of them. It prints the
// commands to try and stops everything on Ctrl-C or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	dataplane := flag.String("dataplane", "bin/flax-dataplane", "path of the flax-dataplane binary")
	config := flag.String("config", "examples/standalone.yaml", "standalone config to serve")
	listen := flag.String("listen", "127.0.0.1:8080", "the address the config listens on (for the printed commands)")
	flag.Parse()
	if err := run(*dataplane, *config, *listen); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(dataplane, config, listen string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	for _, b := range []struct{ name, addr string }{
		{"echo-a", "127.0.0.1:9001"}, {"echo-b", "127.0.0.1:9002"}, {"api", "127.0.0.1:9003"},
	} {
		ln, err := net.Listen("tcp", b.addr)
		if err != nil {
			return fmt.Errorf("start backend %s: %w", b.name, err)
		}
		name := b.name
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Backend", name)
			fmt.Fprintf(w, "backend=%s method=%s host=%s path=%s\n", name, r.Method, r.Host, r.URL.RequestURI())
		})}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		fmt.Printf("demo: backend %s on %s\n", b.name, b.addr)
	}

	cmd := exec.CommandContext(ctx, dataplane, "run", "--config", config)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", dataplane, err)
	}
	fmt.Printf(`demo: flax-dataplane serves %[2]s on %[1]s (pid %[3]d). Try:
  curl -s -H 'Host: app.example.com' http://%[1]s/                      # -> web (echo-a/echo-b, round robin)
  curl -s -H 'Host: app.example.com' http://%[1]s/api/users             # -> api (path prefix)
  curl -s -H 'Host: app.example.com' -X POST http://%[1]s/api/users     # -> api (method match)
  curl -si -H 'Host: app.example.com' -H 'x-canary: true' http://%[1]s/api/  # header match, x-served-by: canary
  curl -s -H 'Host: app.example.com' http://%[1]s/healthz               # answered by the dataplane
  curl -si -H 'Host: legacy.example.com' http://%[1]s/old               # 301 to app.example.com
  curl -s http://127.0.0.1:9901/metrics | grep ^flax_                   # admin: metrics
Edit %[2]s and save: the dataplane reloads it (an invalid file is rejected, the last good config keeps serving).
Ctrl-C stops the demo.
`, listen, config, cmd.Process.Pid)
	err := cmd.Wait()
	if ctx.Err() != nil {
		fmt.Println("demo: stopped")
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("flax-dataplane exited: %w", err)
	}
	return err
}
