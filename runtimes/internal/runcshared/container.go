package runcshared

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/rpc"
	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/mountinfo"
	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/utils"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/cedana/cedana/errs"
	"github.com/cedana/cedana/sysinfo"
)

// Container is a runc container as its state directory describes it.
type Container struct {
	id     string
	root   string
	status libcontainer.Status
	state  *libcontainer.State
	lc     *libcontainer.Container
}

// Load reads container id's state from runc's root. A missing root or container is a not-found
// error that names the fix.
func Load(root, id string) (*Container, error) {
	if id == "" {
		return nil, errs.Invalid("no container ID: give the ID runc knows the container by")
	}
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return nil, errs.NotFound("runc root %s does not exist: pass the --root the container was created with", root)
	}
	c, err := libcontainer.Load(root, id)
	if errors.Is(err, libcontainer.ErrNotExist) {
		return nil, errs.NotFound("no runc container %q under %s (see `runc --root %s list`)", id, root, root)
	}
	if err != nil {
		return nil, fmt.Errorf("load runc container %s: %w", id, err)
	}
	status, err := c.Status()
	if err != nil {
		return nil, fmt.Errorf("status of runc container %s: %w", id, err)
	}
	state, err := c.State()
	if err != nil {
		return nil, fmt.Errorf("state of runc container %s: %w", id, err)
	}
	return &Container{id: id, root: root, status: status, state: state, lc: c}, nil
}

// Exists reports whether runc has a container id under root.
func Exists(root, id string) bool {
	_, err := os.Stat(filepath.Join(root, id, "state.json"))
	return err == nil
}

// Status is the container's status when it was loaded.
func (c *Container) Status() libcontainer.Status { return c.status }

// RequireRunning refuses a container that is not running, saying what to do instead.
func (c *Container) RequireRunning() error {
	switch c.status {
	case libcontainer.Running:
		return nil
	case libcontainer.Paused:
		return errs.Precondition("container %s is paused: resume it (`runc --root %s resume %s`) to checkpoint it", c.id, c.root, c.id)
	case libcontainer.Created:
		return errs.Precondition("container %s is created but not started: start it (`runc --root %s start %s`) to checkpoint it", c.id, c.root, c.id)
	default:
		return errs.Precondition("container %s is %s: there is nothing to checkpoint", c.id, c.status)
	}
}

// frozenKey is the context key of FrozenOnPurpose's set of containers.
type frozenKey struct{}

// FrozenOnPurpose returns ctx under which a dump accepts containers ids paused: the caller froze
// their cgroups itself to dump them together (a pod's containers), and resumes them itself. CRIU
// dumps a frozen cgroup's tasks and, with --leave-running, leaves the cgroup frozen as it found
// it.
func FrozenOnPurpose(ctx context.Context, ids ...string) context.Context {
	set := map[string]bool{}
	for id := range frozenSet(ctx) {
		set[id] = true
	}
	for _, id := range ids {
		set[id] = true
	}
	return context.WithValue(ctx, frozenKey{}, set)
}

// frozenSet is the set of containers ctx lets a dump take paused.
func frozenSet(ctx context.Context) map[string]bool {
	set, _ := ctx.Value(frozenKey{}).(map[string]bool)
	return set
}

// IsFrozenOnPurpose reports whether ctx lets a dump take container id paused (FrozenOnPurpose).
func IsFrozenOnPurpose(ctx context.Context, id string) bool { return frozenSet(ctx)[id] }

// RequireDumpable is RequireRunning, except that a container ctx names as frozen on purpose
// (FrozenOnPurpose) may also be paused.
func (c *Container) RequireDumpable(ctx context.Context) error {
	if c.status == libcontainer.Paused && IsFrozenOnPurpose(ctx, c.id) {
		return nil
	}
	return c.RequireRunning()
}

// Pause freezes the container's cgroup, as `runc pause` does, without running runc.
func (c *Container) Pause() error {
	if err := c.lc.Pause(); err != nil {
		return fmt.Errorf("pause runc container %s: %w", c.id, err)
	}
	return nil
}

// Resume thaws the container's cgroup, as `runc resume` does; a container that is not paused
// (any more) is left alone.
func (c *Container) Resume() error {
	if err := c.lc.Resume(); err != nil && !errors.Is(err, libcontainer.ErrNotPaused) {
		return fmt.Errorf("resume runc container %s: %w", c.id, err)
	}
	return nil
}

// PID is the container's init process in our PID namespace.
func (c *Container) PID() int { return c.state.InitProcessPid }

// Bundle is the bundle runc recorded for the container, "" if none.
func (c *Container) Bundle() string {
	bundle, _ := utils.Annotations(c.state.Config.Labels)
	return bundle
}

// criuOptions is what runc itself passes to CRIU when it checkpoints the container: the rootfs as
// CRIU's root, the bind mounts, cgroup v1 bind mounts, masked files and device nodes as external
// mounts, a network or PID namespace the spec points at as external, the cgroup freezer, and
// orphan pty masters (a terminal's master lives outside the container).
func (c *Container) criuOptions() (func(*rpc.CriuOpts), error) {
	cfg := c.state.Config
	var mounts []*rpc.ExtMountMap
	external := func(dest, val string) {
		dest = mountDest(cfg.Rootfs, dest)
		if val == "" {
			val = dest
		}
		mounts = append(mounts, &rpc.ExtMountMap{Key: proto.String(dest), Val: proto.String(val)})
	}
	hasCgroupNS := cfg.Namespaces.Contains(configs.NEWCGROUP)
	for _, m := range cfg.Mounts {
		switch m.Device {
		case "bind":
			external(m.Destination, "")
		case "cgroup":
			if cgroups.IsCgroup2UnifiedMode() || hasCgroupNS {
				continue // a real cgroup mount CRIU dumps itself
			}
			// cgroup v1 without a cgroup namespace: runc bind-mounts each host hierarchy.
			binds, err := cgroupBinds(c.PID(), m.Destination)
			if err != nil {
				return nil, err
			}
			for _, b := range binds {
				external(b, "")
			}
		}
	}
	for _, path := range cfg.MaskPaths {
		fi, err := os.Stat(fmt.Sprintf("/proc/%d/root%s", c.PID(), path))
		if err != nil || fi.IsDir() {
			continue // runc masks directories with a read-only tmpfs, which CRIU dumps
		}
		external(path, "/dev/null")
	}
	for _, dev := range cfg.Devices {
		external(dev.Path, "")
	}
	var namespaces []string
	for _, t := range []configs.NamespaceType{configs.NEWNET, configs.NEWPID} {
		path := cfg.Namespaces.PathOf(t)
		if path == "" {
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			return nil, errs.Precondition("the container's %s namespace %s: %w", configs.NsName(t), path, err)
		}
		namespaces = append(namespaces, fmt.Sprintf("%s[%d]:%s", configs.NsName(t), st.Ino, externalNSKey(t)))
	}
	freezer := c.state.CgroupPaths["freezer"]
	if cgroups.IsCgroup2UnifiedMode() {
		freezer = c.state.CgroupPaths[""]
	}
	mode := rpc.CriuCgMode_DEFAULT
	terminal := onTerminal(c.PID())
	return func(o *rpc.CriuOpts) {
		o.Root = proto.String(cfg.Rootfs)
		o.ManageCgroups = proto.Bool(true)
		o.ManageCgroupsMode = &mode
		// Only CRIU's RPC takes orphan pty masters: asked for only where a terminal is, the other
		// dumps may stream their images (criu --stream runs as a command).
		o.OrphanPtsMaster = proto.Bool(terminal)
		o.ExtMnt = append(o.ExtMnt, mounts...)
		o.External = append(o.External, namespaces...)
		if freezer != "" {
			o.FreezeCgroup = proto.String(freezer)
		}
	}, nil
}

// onTerminal reports whether a process of the tree rooted at pid has a pseudo-terminal open (a
// container with terminal: true has its stdio there), whose master may live outside the
// container: CRIU must then be asked to take orphan pty masters.
func onTerminal(pid int) bool {
	for _, p := range sysinfo.Tree(pid) {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p))
		for _, fd := range fds {
			target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", p, fd.Name()))
			if err == nil && (strings.HasPrefix(target, "/dev/pts/") || target == "/dev/ptmx") {
				return true
			}
		}
	}
	return false
}

// externalNSKey is the key runc uses for an external namespace: runc restore passes the
// namespace under the same key.
func externalNSKey(t configs.NamespaceType) string {
	name := configs.NsName(t)
	return "extRoot" + strings.ToUpper(name[:1]) + name[1:] + "NS"
}

// mountDest is mount destination dest as CRIU names it inside the container: joined under
// rootfs with its symlinks resolved there, as runc does, or only cleaned when that fails.
func mountDest(rootfs, dest string) string {
	rel := strings.TrimPrefix(dest, rootfs)
	if full, err := securejoin.SecureJoin(rootfs, rel); err == nil {
		if inside, ok := strings.CutPrefix(full, rootfs); ok {
			return "/" + strings.TrimLeft(inside, "/")
		}
	}
	return "/" + strings.TrimLeft(filepath.Clean(rel), "/")
}

// cgroupBinds lists the cgroup mounts under dest in the container's mount table, as the
// container sees them.
func cgroupBinds(pid int, dest string) ([]string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return nil, fmt.Errorf("read the container's mounts: %w", err)
	}
	defer f.Close()
	return cgroupBindsIn(f, dest)
}

// cgroupBindsIn lists the cgroup mounts strictly below dest in mountinfo, a mount table in the
// format of /proc/<pid>/mountinfo.
func cgroupBindsIn(table io.Reader, dest string) ([]string, error) {
	prefix := strings.TrimSuffix(dest, "/") + "/"
	mounts, err := mountinfo.GetMountsFromReader(table, func(m *mountinfo.Info) (skip, stop bool) {
		cgroup := m.FSType == "cgroup" || m.FSType == "cgroup2"
		return !cgroup || !strings.HasPrefix(m.Mountpoint, prefix), false
	})
	if err != nil {
		return nil, fmt.Errorf("read the container's mounts: %w", err)
	}
	binds := make([]string, 0, len(mounts))
	for _, m := range mounts {
		binds = append(binds, m.Mountpoint)
	}
	return binds, nil
}
