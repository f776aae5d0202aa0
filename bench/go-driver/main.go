// envd-bench's Go peers: one harness (this file) and two clients chosen at
// build time, run under the protocol of bench/driver.c.
//
// `go` (agentsapi.go, the default build) is the OpenKruise agents-api
// runtime client (github.com/openkruise/agents-api/runtime). `go-connect`
// (goconnect.go, built with -tags goconnect) makes the same calls with that
// client's own stack: connect-go clients generated from the repository's protos at
// bench time, called as runtime calls them.
//
//	envd-bench-go --addr 127.0.0.1:PORT --transport grpc|connect-h1|connect-h2c|connect-tls \
//	    --op stat|list|run|read|write --path P --concurrency C --warmup S --duration S \
//	    [--cmd CMD] [--access-token T] [--ca CERT.pem]
//
// C goroutines keep one call each in flight for warm-up + duration. The
// program prints "measure-start" and "measure-end" at the edges of the
// measured window (envd-bench reads its CPU from /proc then), and one JSON
// line: {calls, errors, seconds, p50_us, p90_us, p99_us, mean_us, max_us,
// self_cpu_us, first_error}.
//
// Transports, for both clients: Connect (binary protobuf) through an
// http.Client whose transport is Go's default (HTTP/1.1 over http://) or
// the same with only unencrypted HTTP/2 enabled (h2c), or over https
// trusting --ca (Go's default: HTTP/2 where ALPN offers it); gRPC is
// connect-go's generated clients with connect.WithGRPC() over h2c.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const sandboxID = "envd-bench" // what libenvd and h2load send as e2b-sandbox-id

type options struct {
	addr, transport, op, path, cmd, token, ca string
	concurrency                               int
	warmup, duration                          float64
}

// envdClient is the five calls of runtime.Client the bench makes; each
// build target provides newClient (agentsapi.go, goconnect.go).
type envdClient interface {
	stat(ctx context.Context, path string) error
	list(ctx context.Context) error
	run(ctx context.Context, cmd string) error
	read(ctx context.Context, path string) error
	write(ctx context.Context, path string, data []byte) error
}

// httpClient returns an http.Client for the transport: HTTP/1.1 with one
// idle connection kept per call in flight (as libcurl keeps them), h2c, or
// https;
// the 60 s timeout of runtime's default client.
func httpClient(o *options) (*http.Client, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = o.concurrency + 16
	t.MaxIdleConnsPerHost = o.concurrency + 16
	switch o.transport {
	case "connect-h1":
	case "connect-tls":
		pem, err := os.ReadFile(o.ca)
		if err != nil {
			return nil, err
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no certificate", o.ca)
		}
		t.TLSClientConfig = &tls.Config{RootCAs: roots}
	case "connect-h2c", "grpc":
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		t.Protocols = p
	default:
		return nil, fmt.Errorf("unknown transport %q", o.transport)
	}
	return &http.Client{Transport: t, Timeout: 60 * time.Second}, nil
}

// scheme of the sandbox URL for the transport.
func scheme(o *options) string {
	if o.transport == "connect-tls" {
		return "https"
	}
	return "http"
}

func operation(o *options, c envdClient) (func(context.Context) error, error) {
	payload := []byte("envd-bench go driver\n")
	switch o.op {
	case "stat":
		return func(ctx context.Context) error { return c.stat(ctx, o.path) }, nil
	case "list":
		return c.list, nil
	case "run":
		return func(ctx context.Context) error { return c.run(ctx, o.cmd) }, nil
	case "read":
		return func(ctx context.Context) error { return c.read(ctx, o.path) }, nil
	case "write":
		return func(ctx context.Context) error { return c.write(ctx, o.path, payload) }, nil
	}
	return nil, fmt.Errorf("unknown op %q", o.op)
}

type result struct {
	Calls      uint64  `json:"calls"`
	Errors     uint64  `json:"errors"`
	Seconds    float64 `json:"seconds"`
	P50        float64 `json:"p50_us"`
	P90        float64 `json:"p90_us"`
	P99        float64 `json:"p99_us"`
	Mean       float64 `json:"mean_us"`
	Max        float64 `json:"max_us"`
	SelfCPU    float64 `json:"self_cpu_us"`
	FirstError *string `json:"first_error"`
}

func cpuMicros() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e3
}

const (
	warmingUp = iota
	measuring
	stopping
)

func measure(o *options, call func(context.Context) error) result {
	var phase atomic.Int32
	var errs atomic.Uint64
	var firstErr atomic.Pointer[string]
	lat := make([][]float64, o.concurrency)
	var wg sync.WaitGroup
	ctx := context.Background()
	for i := 0; i < o.concurrency; i++ {
		wg.Add(1)
		go func(mine *[]float64) {
			defer wg.Done()
			for phase.Load() != stopping {
				t0 := time.Now()
				err := call(ctx)
				us := float64(time.Since(t0).Nanoseconds()) / 1e3
				if err != nil {
					msg := err.Error()
					firstErr.CompareAndSwap(nil, &msg)
				}
				if phase.Load() != measuring {
					continue
				}
				if err != nil {
					errs.Add(1)
				} else {
					*mine = append(*mine, us)
				}
			}
		}(&lat[i])
	}
	time.Sleep(time.Duration(o.warmup * float64(time.Second)))
	os.Stdout.WriteString("measure-start\n")
	cpu0 := cpuMicros()
	t0 := time.Now()
	phase.Store(measuring)
	time.Sleep(time.Duration(o.duration * float64(time.Second)))
	phase.Store(stopping)
	secs := time.Since(t0).Seconds()
	cpu := cpuMicros() - cpu0
	os.Stdout.WriteString("measure-end\n")
	wg.Wait()

	var all []float64
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Float64s(all)
	q := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := int(p*float64(len(all))+0.999999) - 1
		if i < 0 {
			i = 0
		}
		if i >= len(all) {
			i = len(all) - 1
		}
		return all[i]
	}
	r := result{Calls: uint64(len(all)), Errors: errs.Load(), Seconds: secs,
		P50: q(0.5), P90: q(0.9), P99: q(0.99), SelfCPU: cpu, FirstError: firstErr.Load()}
	if len(all) > 0 {
		sum := 0.0
		for _, v := range all {
			sum += v
		}
		r.Mean = sum / float64(len(all))
		r.Max = all[len(all)-1]
	}
	return r
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "", "server HOST:PORT")
	flag.StringVar(&o.transport, "transport", "connect-h1", "grpc | connect-h1 | connect-h2c | connect-tls")
	flag.StringVar(&o.ca, "ca", "", "certificate to trust for connect-tls")
	flag.StringVar(&o.op, "op", "stat", "stat | list | run | read | write")
	flag.StringVar(&o.path, "path", "/", "file for stat, read and write")
	flag.StringVar(&o.cmd, "cmd", "true", "command for run")
	flag.StringVar(&o.token, "access-token", "", "X-Access-Token, if any")
	flag.IntVar(&o.concurrency, "concurrency", 1, "calls in flight")
	flag.Float64Var(&o.warmup, "warmup", 1, "unmeasured seconds")
	flag.Float64Var(&o.duration, "duration", 3, "measured seconds")
	flag.Parse()
	if o.addr == "" || o.concurrency < 1 {
		fmt.Fprintln(os.Stderr, filepath.Base(os.Args[0])+": --addr and --concurrency >= 1 are required")
		os.Exit(2)
	}
	c, err := newClient(&o)
	if err == nil {
		var call func(context.Context) error
		if call, err = operation(&o, c); err == nil {
			// one call first: connects and proves the case works
			if err = call(context.Background()); err == nil {
				out, _ := json.Marshal(measure(&o, call))
				os.Stdout.Write(append(out, '\n'))
				return
			}
		}
	}
	fmt.Fprintln(os.Stderr, filepath.Base(os.Args[0])+":", err)
	os.Exit(1)
}
