//go:build !goconnect

// The `go` peer: the OpenKruise agents-api runtime client itself
// (runtime.NewWithConfig with WithDomain, WithScheme("http") and the
// transport's http.Client). runtime.Client has no protocol option, so for
// gRPC the module's own generated envd clients are built with
// connect.WithGRPC() and handed to runtime.NewFilesystem /
// runtime.NewCommands, the constructors runtime.NewWithConfig itself uses.
package main

import (
	"context"

	"connectrpc.com/connect"
	"github.com/openkruise/agents-api/runtime"
	"github.com/openkruise/agents-api/runtime/envd/filesystem/filesystemconnect"
	"github.com/openkruise/agents-api/runtime/envd/process/processconnect"
)

type agentsAPI struct{ c *runtime.Client }

func newClient(o *options) (envdClient, error) {
	hc, err := httpClient(o)
	if err != nil {
		return nil, err
	}
	cfg := runtime.NewConfig(runtime.WithDomain(o.addr), runtime.WithScheme(scheme(o)),
		runtime.WithHTTPClient(hc), runtime.WithRuntimeToken(o.token))
	c := runtime.NewWithConfig(sandboxID, cfg)
	if o.transport == "grpc" {
		url := cfg.SandboxURL(sandboxID)
		headers := cfg.SandboxHeaders(sandboxID)
		fs := filesystemconnect.NewFilesystemClient(hc, url, connect.WithGRPC())
		proc := processconnect.NewProcessClient(hc, url, connect.WithGRPC())
		c.Files = runtime.NewFilesystem(fs, hc, cfg.StreamingHTTPClient(), url, headers)
		c.Commands = runtime.NewCommands(proc, headers)
	}
	return agentsAPI{c}, nil
}

func (a agentsAPI) stat(ctx context.Context, path string) error {
	_, err := a.c.Files.GetInfo(ctx, path)
	return err
}

func (a agentsAPI) list(ctx context.Context) error {
	_, err := a.c.Commands.List(ctx)
	return err
}

func (a agentsAPI) run(ctx context.Context, cmd string) error {
	_, err := a.c.Commands.Run(ctx, cmd)
	return err
}

func (a agentsAPI) read(ctx context.Context, path string) error {
	_, err := a.c.Files.Read(ctx, path)
	return err
}

func (a agentsAPI) write(ctx context.Context, path string, data []byte) error {
	_, err := a.c.Files.Write(ctx, path, data)
	return err
}
