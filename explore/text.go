package explore

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/checkpoint-restore/go-criu/v8/crit"
)

// Print writes data, the JSON of a decoded kind (Result.JSON), as a table: the process tree
// indented by depth, or one row per file, mapping, page run or socket with its process's PID.
func Print(w io.Writer, kind string, data []byte) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	var err error
	switch kind {
	case "ps":
		err = printPs(tw, data)
	case "fd":
		err = printRows(tw, data, "PID\tFD\tTYPE\tPATH", func(f *crit.Fd) (uint32, [][]string) {
			rows := make([][]string, 0, len(f.Files))
			for _, file := range f.Files {
				rows = append(rows, []string{file.Fd, dash(file.Type), file.Path})
			}
			return f.PId, rows
		})
	case "mem":
		err = printRows(tw, data, "PID\tSTART\tEND\tPROT\tRESOURCE", func(m *crit.MemMap) (uint32, [][]string) {
			rows := [][]string{{"-", "-", "-", "exe " + m.Exe}}
			for _, mem := range m.Mems {
				rows = append(rows, []string{mem.Start, mem.End, mem.Protection, dash(strings.TrimSpace(mem.Resource))})
			}
			return m.PId, rows
		})
	case "rss":
		err = printRows(tw, data, "PID\tADDR\tPAGES\tVMAS\tRESOURCE", func(r *crit.RssMap) (uint32, [][]string) {
			rows := make([][]string, 0, len(r.Rsses))
			for _, rss := range r.Rsses {
				vmas := make([]string, 0, len(rss.Vmas))
				for _, v := range rss.Vmas {
					vmas = append(vmas, v.Addr+"/"+strconv.FormatInt(v.Pages, 10))
				}
				rows = append(rows, []string{rss.PhyAddr, strconv.FormatInt(rss.PhyPages, 10), dash(strings.Join(vmas, " ")), dash(rss.Resource)})
			}
			return r.PId, rows
		})
	case "sk":
		err = printRows(tw, data, "PID\tFD\tKIND\tFAMILY\tPROTO\tTYPE\tSTATE\tSOURCE\tDESTINATION", func(s *crit.Sk) (uint32, [][]string) {
			rows := make([][]string, 0, len(s.Sockets))
			for _, sk := range s.Sockets {
				rows = append(rows, []string{
					strconv.FormatUint(uint64(sk.Fd), 10), sk.FdType, dash(sk.Family), dash(sk.Protocol),
					dash(sk.Type), dash(sk.State), endpoint(sk.SrcAddr, sk.SrcPort), endpoint(sk.DestAddr, sk.DestPort),
				})
			}
			return s.PId, rows
		})
	default:
		return CheckKind(kind)
	}
	if err != nil {
		return err
	}
	return tw.Flush()
}

// printPs writes the process tree, children under their parent, indented, in PID order.
func printPs(w io.Writer, data []byte) error {
	var root *crit.PsTree
	if err := json.Unmarshal(data, &root); err != nil {
		return fmt.Errorf("decode the process tree: %w", err)
	}
	fmt.Fprintln(w, "PID\tPGID\tSID\tCOMM")
	var walk func(p *crit.PsTree, depth int)
	walk = func(p *crit.PsTree, depth int) {
		fmt.Fprintf(w, "%s%d\t%d\t%d\t%s\n", strings.Repeat("  ", depth), p.PID, p.PgID, p.SID, p.Comm)
		children := slices.Clone(p.Children)
		slices.SortFunc(children, func(a, b *crit.PsTree) int { return int(a.PID) - int(b.PID) })
		for _, c := range children {
			walk(c, depth+1)
		}
	}
	if root != nil {
		walk(root, 0)
	}
	return nil
}

// printRows writes header, then each process's rows (from rows) after its PID.
func printRows[T any](w io.Writer, data []byte, header string, rows func(*T) (uint32, [][]string)) error {
	var procs []*T
	if err := json.Unmarshal(data, &procs); err != nil {
		return fmt.Errorf("decode the images' JSON: %w", err)
	}
	fmt.Fprintln(w, header)
	for _, p := range procs {
		pid, rs := rows(p)
		for _, r := range rs {
			fmt.Fprintf(w, "%d\t%s\n", pid, strings.Join(r, "\t"))
		}
	}
	return nil
}

// endpoint is addr:port, addr alone without a port, "-" without an address.
func endpoint(addr string, port uint32) string {
	switch {
	case addr == "":
		return "-"
	case port == 0:
		return addr
	}
	return addr + ":" + strconv.FormatUint(uint64(port), 10)
}

// dash is s, or "-" when it is empty.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
