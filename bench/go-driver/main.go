// envd-bench's Go peer: the OpenKruise agents-api runtime client
// (github.com/openkruise/agents-api/runtime) making the same calls as
// libenvd, against the same server, under the protocol of bench/driver.c.
//
//	envd-bench-go --addr 127.0.0.1:PORT --transport grpc|connect-h1|connect-h2c \
//	    --op stat|list|run|read|write --path P --concurrency C --warmup S --duration S
//
// C goroutines keep one call each in flight for warm-up + duration. The
// program prints "measure-start" and "measure-end" at the edges of the
// measured window (envd-bench reads its CPU from /proc then), and one JSON
// line: {calls, errors, seconds, p50_us, p90_us, p99_us, mean_us, max_us,
// self_cpu_us, first_error}.
//
// Transports. runtime.Client speaks Connect (binary protobuf) through the
// http.Client it is given: the default transport gives HTTP/1.1 over
// http://, a transport with only unencrypted HTTP/2 enabled gives h2c. It
// has no protocol option, so for gRPC the driver builds the module's own
// generated envd clients with connect.WithGRPC() over h2c and hands them to
// runtime.NewFilesystem / runtime.NewCommands, the constructors
// runtime.NewWithConfig itself uses.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"github.com/openkruise/agents-api/runtime"
	"github.com/openkruise/agents-api/runtime/envd/filesystem/filesystemconnect"
	"github.com/openkruise/agents-api/runtime/envd/process/processconnect"
)

const sandboxID = "envd-bench" // what libenvd and h2load send as e2b-sandbox-id

type options struct {
	addr, transport, op, path, cmd string
	concurrency                    int
	warmup, duration               float64
}

// httpClient returns an http.Client for the transport: HTTP/1.1 with one
// idle connection kept per call in flight (as libcurl keeps them), or h2c.
func httpClient(o *options) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = o.concurrency + 16
	t.MaxIdleConnsPerHost = o.concurrency + 16
	if o.transport != "connect-h1" {
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		t.Protocols = p
	}
	return &http.Client{Transport: t, Timeout: 60 * time.Second}
}

func newClient(o *options) (*runtime.Client, error) {
	hc := httpClient(o)
	cfg := runtime.NewConfig(runtime.WithDomain(o.addr), runtime.WithScheme("http"),
		runtime.WithHTTPClient(hc))
	c := runtime.NewWithConfig(sandboxID, cfg)
	switch o.transport {
	case "connect-h1", "connect-h2c":
	case "grpc":
		url := cfg.SandboxURL(sandboxID)
		headers := cfg.SandboxHeaders(sandboxID)
		fs := filesystemconnect.NewFilesystemClient(hc, url, connect.WithGRPC())
		proc := processconnect.NewProcessClient(hc, url, connect.WithGRPC())
		c.Files = runtime.NewFilesystem(fs, hc, cfg.StreamingHTTPClient(), url, headers)
		c.Commands = runtime.NewCommands(proc, headers)
	default:
		return nil, fmt.Errorf("unknown transport %q", o.transport)
	}
	return c, nil
}

func operation(o *options, c *runtime.Client) (func(context.Context) error, error) {
	payload := []byte("envd-bench go driver\n")
	switch o.op {
	case "stat":
		return func(ctx context.Context) error { _, err := c.Files.GetInfo(ctx, o.path); return err }, nil
	case "list":
		return func(ctx context.Context) error { _, err := c.Commands.List(ctx); return err }, nil
	case "run":
		return func(ctx context.Context) error { _, err := c.Commands.Run(ctx, o.cmd); return err }, nil
	case "read":
		return func(ctx context.Context) error { _, err := c.Files.Read(ctx, o.path); return err }, nil
	case "write":
		return func(ctx context.Context) error { _, err := c.Files.Write(ctx, o.path, payload); return err }, nil
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
	flag.StringVar(&o.transport, "transport", "connect-h1", "grpc | connect-h1 | connect-h2c")
	flag.StringVar(&o.op, "op", "stat", "stat | list | run | read | write")
	flag.StringVar(&o.path, "path", "/", "file for stat, read and write")
	flag.StringVar(&o.cmd, "cmd", "true", "command for run")
	flag.IntVar(&o.concurrency, "concurrency", 1, "calls in flight")
	flag.Float64Var(&o.warmup, "warmup", 1, "unmeasured seconds")
	flag.Float64Var(&o.duration, "duration", 3, "measured seconds")
	flag.Parse()
	if o.addr == "" || o.concurrency < 1 {
		fmt.Fprintln(os.Stderr, "envd-bench-go: --addr and --concurrency >= 1 are required")
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
	fmt.Fprintln(os.Stderr, "envd-bench-go:", err)
	os.Exit(1)
}
