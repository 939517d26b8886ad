package containerd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/cedana/cedana/errs"
	"github.com/cedana/cedana/features"
	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
	"github.com/cedana/cedana/runtimes/internal/runcshared"
)

// frozenPod is a pod's selected containers and their tasks, as DumpPod pauses, dumps and then
// resumes or ends them.
type frozenPod struct {
	ns      string // containerd's namespace
	members []podMember
	tasks   []client.Task
	runc    []*runcshared.Container // the tasks' runc containers, whose cgroups DumpPod freezes
	paused  []bool                  // runc[i] was paused by DumpPod and not resumed yet
	ended   bool                    // the tasks were killed: nothing to resume
}

var _ features.PodDumper = DumpPod

// DumpPod is the containerd runtime's pod dump (features.PodDumper). It finds the pod's running
// app containers in containerd's CRI namespace (k8s.io unless the request names another), by the
// kubelet's labels or else the CRI's annotations, and freezes them all (their cgroups, as runc pause does), so
// that none runs ahead of another. Then it dumps each, with its writable layer, through
// steps.Dump as `cedana dump containerd --rootfs --leave-running` would (CRIU leaves a cgroup it
// found frozen frozen), has steps.Commit write the manifest, and resumes the containers
// (--leave-running) or kills them and deletes their tasks. Whatever fails, every container is
// resumed and keeps running.
func DumpPod(ctx context.Context, req *daemonv1.DumpPodRequest, steps features.PodDumpSteps) (_ *daemonv1.DumpPodResponse, err error) {
	d := withDefaults(&daemonv1.ContainerdDetails{Namespace: cmp.Or(req.ContainerdNamespace, K8sNamespace), Address: req.Address})
	q := podQuery{Pod: req.Pod, Namespace: cmp.Or(req.Namespace, "default"), Names: req.Containers, CtrNamespace: d.Namespace, Address: d.Address}
	c, nsCtx, err := connect(ctx, d)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	members, err := listMembers(nsCtx, c, q)
	if err != nil {
		return nil, err
	}
	selected, err := selectPod(members, q)
	if err != nil {
		return nil, err
	}
	pod := &frozenPod{ns: d.Namespace, members: selected}
	for _, m := range selected {
		ctr, err := loadContainer(nsCtx, c, &daemonv1.ContainerdDetails{Id: m.ID, Namespace: d.Namespace})
		if err != nil {
			return nil, err
		}
		task, err := runningTask(nsCtx, ctr, &daemonv1.ContainerdDetails{Id: m.ID}, false)
		if err != nil {
			return nil, err
		}
		rc, err := runcshared.Load(runcRoot(d.Namespace), m.ID)
		if err != nil {
			return nil, err
		}
		pod.tasks = append(pod.tasks, task)
		pod.runc = append(pod.runc, rc)
	}
	pod.paused = make([]bool, len(pod.tasks))
	// Resuming must happen even when the client has gone away.
	keep := context.WithoutCancel(nsCtx)
	defer func() {
		if rerr := pod.resume(); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()

	resp := &daemonv1.DumpPodResponse{
		Manifest: &daemonv1.PodCheckpoint{Name: q.Pod, Namespace: q.Namespace, Uid: selected[0].UID},
		Stats:    &daemonv1.Stats{},
	}
	frozenAt := time.Now()
	if err := pod.pause(q); err != nil {
		return nil, err
	}
	ids := make([]string, len(selected))
	for i, m := range selected {
		ids[i] = m.ID
	}
	dumpCtx := runcshared.FrozenOnPurpose(ctx, ids...)
	for _, m := range selected {
		creq := &daemonv1.DumpRequest{
			Type:        Name,
			Dir:         steps.Location,
			Name:        m.Name,
			Compression: req.Compression,
			Criu:        proto.CloneOf(cmp.Or(req.Criu, &daemonv1.CriuOptions{})),
			Details:     &daemonv1.Details{Containerd: &daemonv1.ContainerdDetails{Id: m.ID, Namespace: d.Namespace, Address: d.Address, Rootfs: true}},
		}
		// Every container stays until all are dumped and the manifest is written: a failure
		// then resumes them all, and the pod runs on as if nothing happened.
		creq.Criu.LeaveRunning = true
		cresp, err := steps.Dump(dumpCtx, creq)
		if err != nil {
			return nil, fmt.Errorf("dump container %q (%s) of pod %s/%s: %w; every container of the pod runs on", m.Name, m.ID, q.Namespace, q.Pod, err)
		}
		resp.Containers = append(resp.Containers, cresp)
		resp.Manifest.Containers = append(resp.Manifest.Containers, &daemonv1.PodContainer{
			Name: m.Name, Image: m.Image, Id: m.ID, Entry: path.Base(cresp.Path),
		})
	}
	resp.Stats.Frozen = durationpb.New(time.Since(frozenAt))
	if req.GetCriu().GetLeaveRunning() {
		if err := pod.resume(); err != nil {
			return nil, err
		}
	}
	if err := steps.Commit(ctx, resp); err != nil {
		return nil, err
	}
	if !req.GetCriu().GetLeaveRunning() {
		pod.end(keep)
	}
	return resp, nil
}

// pause freezes every container's cgroup, one right after the other (microseconds apart: no
// runc process is started), so that they stop at one instant; on failure the caller resumes
// those it froze.
func (p *frozenPod) pause(q podQuery) error {
	for i, rc := range p.runc {
		if err := rc.Pause(); err != nil {
			return errs.Precondition("freeze container %q (%s) of pod %s/%s: %w; the pod runs on", p.members[i].Name, p.members[i].ID, q.Namespace, q.Pod, err)
		}
		p.paused[i] = true
	}
	return nil
}

// resume thaws the containers pause froze, unless they were ended.
func (p *frozenPod) resume() error {
	if p.ended {
		return nil
	}
	var failed []error
	for i, rc := range p.runc {
		if !p.paused[i] {
			continue
		}
		if err := rc.Resume(); err != nil {
			failed = append(failed, fmt.Errorf("%w (resume it with `runc --root %s resume %s`)", err, runcRoot(p.ns), p.members[i].ID))
			continue
		}
		p.paused[i] = false
	}
	return errors.Join(failed...)
}

// end kills the dumped tasks, still paused so that none runs past its checkpoint, lets them die
// and deletes them, as `cedana dump containerd` does without --leave-running, so that their
// containers can take restored tasks.
func (p *frozenPod) end(ctx context.Context) {
	for _, task := range p.tasks {
		_ = task.Kill(ctx, syscall.SIGKILL, client.WithKillAll)
	}
	p.ended = true
	for i, task := range p.tasks {
		if p.paused[i] {
			_ = p.runc[i].Resume() // a killed task in a frozen cgroup dies once thawed
		}
		_ = deleteStoppedTask(ctx, task)
	}
}
