package chain

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/criu"
	"github.com/cedana/cedana/criu/imgstream"
	"github.com/cedana/cedana/storage"
)

// NewEnv returns the environment chains run in in this process (the daemon, or a CLI with
// --no-server): CRIU resolved from cfg, defaults from cfg, this process as the daemon. Nothing is
// claimed (Env.Claim) unless the caller says how.
func NewEnv(ctx context.Context, cfg config.Config, log *slog.Logger) *adapters.Env {
	client, v := resolveCRIU(ctx, cfg, log)
	return &adapters.Env{
		CRIU:           client,
		CRIUVersion:    v,
		CRIULogLevel:   int32(cfg.CRIU.LogLevel),
		CheckpointDir:  cfg.Checkpoint.Dir,
		Compression:    cfg.Checkpoint.Compression,
		TempDir:        cfg.Checkpoint.TempDir,
		StreamImages:   cfg.Checkpoint.StreamImages,
		StreamMemory:   cfg.Checkpoint.StreamMemoryLimit,
		StreamPool:     imgstream.NewPool(cfg.Checkpoint.StreamMemoryLimit),
		Workers:        runtime.NumCPU(),
		S3:             s3Config(cfg.Storage.S3),
		PIDWaitTimeout: time.Duration(cfg.Restore.PIDWaitTimeout),
		DaemonPID:      os.Getpid(),
		LazyCheck:      lazyCheck(client),
	}
}

// lazyCheck is client.CheckLazy, run again until it succeeds once.
func lazyCheck(client *criu.Client) func(context.Context) error {
	var mu sync.Mutex
	ok := false
	return func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if ok {
			return nil
		}
		err := client.CheckLazy(ctx)
		ok = err == nil
		return err
	}
}

// resolveCRIU finds the CRIU binary and its version; a daemon without a usable CRIU still starts
// (health checks say why) and its dumps fail with the same explanation.
func resolveCRIU(ctx context.Context, cfg config.Config, log *slog.Logger) (*criu.Client, int32) {
	path, err := criu.FindBinary(cfg.CRIU.BinaryPath)
	if err != nil {
		log.Warn("no usable CRIU: dumps and restores will fail until one is installed", "error", err)
		return &criu.Client{Binary: cfg.CRIU.BinaryPath}, 0
	}
	client := &criu.Client{Binary: path}
	v, err := client.Version(ctx)
	if err != nil {
		log.Warn("cannot read CRIU's version", "criu", path, "error", strings.TrimSpace(err.Error()))
	}
	return client, int32(v)
}

// s3Config is the object store configuration, with the AWS_* environment filling what the config
// leaves empty.
func s3Config(c config.S3) storage.Config {
	return storage.Config{
		Endpoint: c.Endpoint, Region: c.Region, AccessKey: c.AccessKey, SecretKey: c.SecretKey, Insecure: c.Insecure,
	}.FromEnv(os.Getenv)
}
