package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cedana/cedana/adapters"
	"github.com/cedana/cedana/errs"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/internal/atomicfile"
	"github.com/cedana/cedana/k8s"
	"github.com/cedana/cedana/storage"
	"github.com/cedana/cedana/version"
)

// DumpPod checkpoints a Kubernetes pod's app containers, held frozen together, into one pod
// checkpoint: <dir>/<name> holds each container's checkpoint, a normal one named after the
// container (and recorded in the catalog), and the manifest pod.json, written last. The runtime
// that runs the pod's containers (features.PodDumpHandler) finds, freezes and dumps them, each
// through the daemon's own Dump. On failure no pod.json is written, the containers' checkpoints
// are removed, and the containers run on.
func (s *service) DumpPod(ctx context.Context, req *daemonv1.DumpPodRequest) (*daemonv1.DumpPodResponse, error) {
	start := time.Now()
	if err := validateDumpPod(req); err != nil {
		return nil, err
	}
	_, dumpPod, err := features.OnlyPodDumper()
	if err != nil {
		return nil, err
	}
	if req.Namespace == "" {
		req.Namespace = "default"
	}
	if err := s.fillPodDefaults(ctx, req); err != nil {
		return nil, err
	}
	pod := req.Namespace + "/" + req.Pod
	unlock, err := s.jobs.Lock("pod:"+pod, "pod "+pod)
	if err != nil {
		return nil, err
	}
	defer unlock()
	p := &podDump{s: s, log: s.log.With("op", "dump-pod", "pod", pod), progress: s.progress.start(req.OperationId)}
	defer s.progress.finish(req.OperationId, p.progress)
	if p.location, p.remote, err = s.claimPodLocation(ctx, req); err != nil {
		return nil, err
	}
	p.createdAt = timestamppb.New(start)
	resp, err := dumpPod(ctx, req, features.PodDumpSteps{Location: p.location, Dump: p.dump, Commit: p.commit})
	if err != nil {
		p.rollBack(context.WithoutCancel(ctx))
		return nil, err
	}
	resp.Path = p.location
	stats := adapters.OrNew(&resp.Stats)
	stats.Phases = map[string]*durationpb.Duration{"manifest": durationpb.New(p.committed)}
	for _, c := range resp.Containers {
		stats.Phases["dump "+c.GetCheckpoint().GetName()] = c.GetStats().GetTotal()
		stats.RawBytes += c.GetStats().GetRawBytes()
		stats.StoredBytes += c.GetStats().GetStoredBytes()
	}
	resp.Stats.Total = durationpb.New(time.Since(start))
	p.log.Info("dumped pod", "path", p.location, "containers", len(resp.Containers), "frozen", resp.Stats.Frozen.AsDuration(), "took", resp.Stats.Total.AsDuration())
	return resp, nil
}

// validateDumpPod checks what only the request says.
func validateDumpPod(req *daemonv1.DumpPodRequest) error {
	if err := firstError(noNUL(req), checkOperationID(req.OperationId, false)); err != nil {
		return err
	}
	if req.Pod == "" {
		return errs.Invalid("no pod: give the pod's name, as `kubectl get pods` shows it")
	}
	return nil
}

// fillPodDefaults fills the pod checkpoint's parent directory, name (pod-<namespace>-<pod>-<unix
// nanoseconds>) and codec, and checks them as a dump's own are checked.
func (s *service) fillPodDefaults(ctx context.Context, req *daemonv1.DumpPodRequest) error {
	if req.Name == "" {
		req.Name = fmt.Sprintf("pod-%s-%s-%d", req.Namespace, req.Pod, time.Now().UnixNano())
	}
	probe := &daemonv1.DumpRequest{Type: "pod", Dir: req.Dir, Name: req.Name, Compression: req.Compression}
	check := adapters.DumpHandler(func(context.Context, *adapters.Env, adapters.State, *daemonv1.DumpRequest, *daemonv1.DumpResponse) (adapters.Dumped, error) {
		return false, nil
	}).With(adapters.FillDumpDefaults, adapters.ValidateDumpRequest)
	if _, err := check(ctx, s.env, adapters.State{}, probe, &daemonv1.DumpResponse{}); err != nil {
		return err
	}
	req.Dir, req.Compression = probe.Dir, probe.Compression
	return nil
}

// claimPodLocation returns the pod checkpoint's location, <dir>/<name>, which must be free: a
// local directory is created (empty), an s3:// prefix must hold no manifest yet, and its bucket
// must answer, before any container is touched.
func (s *service) claimPodLocation(ctx context.Context, req *daemonv1.DumpPodRequest) (string, bool, error) {
	loc, remote, _ := storage.ParseURL(req.Dir)
	if !remote {
		dir := filepath.Join(req.Dir, req.Name)
		if err := os.MkdirAll(req.Dir, 0o755); err != nil {
			return "", false, errs.Precondition("cannot create the pod checkpoint in %s: %w; pass a writable --dir", req.Dir, err)
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return "", false, errs.Exists("pod checkpoint %s already exists: choose another --name or delete it first", dir)
			}
			return "", false, errs.Precondition("cannot create the pod checkpoint in %s: %w; pass a writable --dir", req.Dir, err)
		}
		return dir, false, nil
	}
	loc = loc.Join(req.Name)
	client, err := storage.New(s.env.S3)
	if err != nil {
		return "", true, errs.Invalid("%w", err)
	}
	if err := client.Check(ctx, loc.Bucket); err != nil {
		return "", true, err
	}
	exists, err := client.Exists(ctx, loc.Join(k8s.PodManifestFile))
	if err != nil {
		return "", true, err
	}
	if exists {
		return "", true, errs.Exists("pod checkpoint %s already exists: choose another --name or delete it first", loc)
	}
	return loc.String(), true, nil
}

// podDump is one DumpPod's state: where the pod checkpoint goes and what has been written there.
type podDump struct {
	s         *service
	log       *slog.Logger
	progress  *adapters.Progress
	location  string
	remote    bool
	createdAt *timestamppb.Timestamp
	entries   []*daemonv1.DumpResponse // the containers' checkpoints written so far
	committed time.Duration            // how long writing the manifest took
}

// dump dumps one container through the daemon's own Dump, and remembers its checkpoint.
func (p *podDump) dump(ctx context.Context, req *daemonv1.DumpRequest) (*daemonv1.DumpResponse, error) {
	p.progress.Start("dump "+req.Name, 0)
	resp, err := p.s.Dump(ctx, req)
	if err != nil {
		return nil, err
	}
	p.entries = append(p.entries, resp)
	return resp, nil
}

// commit writes the manifest, which marks the pod checkpoint complete: atomically in a local
// directory (a temporary file renamed), through one upload in S3.
func (p *podDump) commit(ctx context.Context, resp *daemonv1.DumpPodResponse) error {
	start := time.Now()
	defer func() { p.committed = time.Since(start) }()
	p.progress.Start("manifest", 0)
	m := resp.Manifest
	m.CreatedAt, m.CedanaVersion = p.createdAt, version.Version
	data, err := protojson.MarshalOptions{UseProtoNames: true, Multiline: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode the pod checkpoint's manifest: %w", err)
	}
	if p.remote {
		loc, _, _ := storage.ParseURL(p.location)
		client, err := storage.New(p.s.env.S3)
		if err != nil {
			return errs.Invalid("%w", err)
		}
		if _, err := client.Upload(ctx, loc.Join(k8s.PodManifestFile), bytes.NewReader(data)); err != nil {
			return fmt.Errorf("write the pod checkpoint's manifest: %w", err)
		}
		return nil
	}
	if err := atomicfile.Write(filepath.Join(p.location, k8s.PodManifestFile), data, 0o644); err != nil {
		return errs.Precondition("write the pod checkpoint's manifest: %w", err)
	}
	return nil
}

// rollBack removes what a failed pod dump wrote: the containers' checkpoints, their catalog
// entries, and the pod checkpoint's directory.
func (p *podDump) rollBack(ctx context.Context) {
	for _, e := range p.entries {
		if err := p.s.removeCheckpoint(ctx, e.Path); err != nil {
			p.log.Error("remove a container's checkpoint of the failed pod dump", "path", e.Path, "error", err)
		}
		if err := p.s.jobs.Store().DeleteCheckpoint(ctx, e.CheckpointId); err != nil {
			p.log.Error("remove a container's checkpoint of the failed pod dump from the catalog", "id", e.CheckpointId, "error", err)
		}
	}
	if !p.remote && p.location != "" {
		if err := os.RemoveAll(p.location); err != nil {
			p.log.Error("remove the failed pod checkpoint", "path", p.location, "error", err)
		}
	}
}
