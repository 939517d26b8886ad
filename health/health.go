// Package health builds cedana's health report: CRIU, the kernel, and each runtime. `cedana check`
// runs it in-process; the daemon's HealthCheck returns the daemon's own.
package health

import (
	"context"
	"fmt"
	"strings"

	"github.com/cedana/cedana/criu"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/sysinfo"
	"github.com/cedana/cedana/version"
)

// imageStreaming is what `cedana check` says about streaming CRIU's images (criu --stream,
// criu/imgstream). CRIU's RPC (criu swrk) cannot stream: it opens the images directory with no
// dump/restore mode, which its streamer code rejects with BUG() (SIGABRT, CRIU 4.1.1). So a streamed
// dump or restore runs `criu dump|restore --stream` as a command, with the request's options as
// flags; a request with an option that has no flag, or a runtime that captures state in CRIU's
// post-dump notification, takes the RPC and the images directory instead.
const imageStreaming = "used for archives and s3:// checkpoints (criu --stream, run as a command: CRIU's RPC cannot stream); " +
	"not for a directory checkpoint, which CRIU writes itself, nor where the RPC is needed (containerd's --rootfs and --image, which capture state in CRIU's post-dump notification; runc terminals); " +
	"checkpoint.stream_images=false turns it off"

// minCRIU is the oldest CRIU that works on kernels from 6.13 (split vvar/vvar_vclock areas).
const minCRIU = 40100

// Report checks the CRIU at criuBinary (resolved as criu.FindBinary does) and every known runtime.
func Report(ctx context.Context, criuBinary string) *daemonv1.HealthCheckResponse {
	r := &daemonv1.HealthCheckResponse{Version: version.Version, Kernel: sysinfo.Kernel(), ImageStreaming: imageStreaming}
	path, err := criu.FindBinary(criuBinary)
	if err != nil {
		r.Errors = append(r.Errors, err.Error())
	} else {
		r.CriuPath = path
		client := &criu.Client{Binary: path}
		if v, err := client.Version(ctx); err != nil {
			r.Errors = append(r.Errors, fmt.Sprintf("criu version: %v", err))
		} else {
			r.CriuVersion = int32(v)
			if v < minCRIU {
				r.Errors = append(r.Errors, fmt.Sprintf("CRIU %s at %s is too old for this kernel: cedana needs 4.1 or newer (run `just deps` or hack/install-criu.sh)", FormatCRIUVersion(int32(v)), path))
			}
		}
		if err := client.Check(ctx); err != nil {
			r.CriuCheck = err.Error()
			r.Errors = append(r.Errors, "criu check failed: "+firstLine(err.Error()))
		} else {
			r.CriuCheckOk = true
			r.CriuCheck = "Looks good."
		}
		r.LazyRestoreOk, r.LazyRestore = lazyRestore(ctx, client)
		if w := kernelProbeCache(criuRunDir); w != "" {
			r.Warnings = append(r.Warnings, w)
		}
	}
	for _, name := range features.Runtimes() {
		rt := &daemonv1.RuntimeHealth{Name: name, CompiledIn: features.HealthCheck.IsAvailable(name)}
		if !rt.CompiledIn {
			rt.Detail = features.Absence(name)
		}
		r.Runtimes = append(r.Runtimes, rt)
	}
	_ = features.HealthCheck.IfAvailable(func(name string, check features.Checker) error {
		for _, rt := range r.Runtimes {
			if rt.Name != name {
				continue
			}
			detail, err := check(ctx)
			rt.Usable = err == nil && r.CriuCheckOk
			rt.Detail = detail
			if err != nil {
				rt.Detail = err.Error()
			} else if !r.CriuCheckOk {
				rt.Detail = "CRIU is not usable"
			}
		}
		return nil
	})
	return r
}

// lazyRestore says whether `restore --lazy` works here (criu.Client.CheckLazy), and why not.
func lazyRestore(ctx context.Context, client *criu.Client) (bool, string) {
	if err := client.CheckLazy(ctx); err != nil {
		return false, "unavailable: " + firstLine(err.Error())
	}
	return true, "available (" + criu.LazyFeature + ", userfaultfd probed): restore --lazy serves the memory on demand"
}

// FormatCRIUVersion turns CRIU's numeric version (40101) into "4.1.1".
func FormatCRIUVersion(v int32) string {
	if v <= 0 {
		return "unknown"
	}
	return fmt.Sprintf("%d.%d.%d", v/10000, v/100%100, v%100)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
